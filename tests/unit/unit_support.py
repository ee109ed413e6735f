"""Paths and helpers shared by the unit tests (fixtures are in conftest.py)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROFILES = REPO / "profiles"
IMAGES = REPO / "images"


def run_profile(image: str = "pyspark", **stored):
    """A resolved profile as a pipeline version stores it (`ResolvedProfile.from_stored`):
    `stored` has the resources, env, node selector and tolerations; the rest are defaults."""
    from analysis_hub.catalog import ResolvedProfile

    return ResolvedProfile.from_stored(image, image, {}, stored)
