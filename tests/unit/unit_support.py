"""Paths and helpers shared by the unit tests (fixtures are in conftest.py)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROFILES = REPO / "profiles"
IMAGES = REPO / "images"
