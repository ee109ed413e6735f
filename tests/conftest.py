"""Shared fixtures. The hub machinery lives in harness.py (benchmarks use it too)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from harness import (  # noqa: F401  (re-exported for the test modules)
    ENVS_DIR,
    REPO,
    USERS,
    RunningHub,
    make_workdir,
    start_hub,
)


@pytest.fixture(scope="module")
def hub():
    """One hub with the repository's catalog, shared by a test module."""
    running = start_hub()
    yield running
    running.stop()
