"""Fixtures for the unit tests: throwaway catalogs built from the repository's profiles."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from analysis_hub.catalog import Catalog, load_catalog
from unit_support import IMAGES, PROFILES


@pytest.fixture
def repo_catalog() -> Catalog:
    return load_catalog(PROFILES, IMAGES)


@pytest.fixture
def catalog_dirs(tmp_path) -> tuple[Path, Path]:
    """A copy of profiles/*.yaml and an images/ folder with each repo image's image.yaml."""
    catalog_dir, images_dir = tmp_path / "profiles", tmp_path / "images"
    catalog_dir.mkdir()
    for path in PROFILES.glob("*.yaml"):
        shutil.copy(path, catalog_dir / path.name)
    for definition in IMAGES.glob("*/image.yaml"):
        (images_dir / definition.parent.name).mkdir(parents=True)
        shutil.copy(definition, images_dir / definition.parent.name / "image.yaml")
    return catalog_dir, images_dir
