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


def pytest_addoption(parser):
    parser.addoption(
        "--reverse",
        action="store_true",
        help="run the collected tests in reverse order (shows whether tests rely on earlier tests' state)",
    )


def pytest_collection_modifyitems(config, items):
    if config.getoption("--reverse"):
        items.reverse()


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server (Debian's), started once for the session and removed at its end."""
    from postgres import PostgresCluster

    cluster = PostgresCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def postgres_url(postgres, request) -> str:
    """A fresh, empty database for this test module, named after it."""
    return postgres.database(request.module.__name__.rsplit(".", 1)[-1].lower())
