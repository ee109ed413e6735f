"""CatalogSource: the running hub's view of the catalog, reloaded on change, last good kept."""

from __future__ import annotations

import logging
import os

import pytest
from analysis_hub.catalog import CatalogError
from analysis_hub.catalog_source import CatalogSource


def touch_later(path, seconds=10):
    """Move a file's mtime forward so the change is seen even within one clock tick."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + seconds * 10**9))


def test_first_load_raises_on_a_broken_catalog(catalog_dirs):
    """A hub does not start on a broken catalog: the first load raises CatalogError."""
    catalog_dir, images_dir = catalog_dirs
    (catalog_dir / "bad.yaml").write_text("- not a mapping\n")
    with pytest.raises(CatalogError):
        CatalogSource(catalog_dir, images_dir)


def test_unchanged_files_return_the_same_catalog(catalog_dirs):
    """Without edits, current() returns the very catalog it loaded."""
    source = CatalogSource(*catalog_dirs)
    assert source.current() is source.current()


def test_valid_edit_is_picked_up(catalog_dirs):
    """An edited, valid profile file is reloaded on the next current()."""
    catalog_dir, images_dir = catalog_dirs
    source = CatalogSource(catalog_dir, images_dir)
    path = catalog_dir / "tensorflow.yaml"
    path.write_text(path.read_text().replace("display_name: TensorFlow", "display_name: TensorFlow 2"))
    touch_later(path)
    assert source.current().get("tensorflow").display_name == "TensorFlow 2"


def test_invalid_edit_keeps_last_good_and_logs_once(catalog_dirs, caplog):
    """A broken edit keeps serving the last good catalog and logs its problems once per broken state."""
    catalog_dir, images_dir = catalog_dirs
    log = logging.getLogger("test.catalog_source")
    source = CatalogSource(catalog_dir, images_dir, log=log)
    good = source.current()
    path = catalog_dir / "tensorflow.yaml"
    path.write_text(path.read_text() + "colour: red\n")
    touch_later(path)
    with caplog.at_level(logging.ERROR, logger=log.name):
        assert source.current() is good
        assert source.current() is good
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "colour: unknown key" in errors[0].getMessage()
    assert str(path) in errors[0].getMessage()

    path.write_text(path.read_text().replace("colour: red\n", ""))
    touch_later(path, 20)
    assert source.current() is not good
    assert source.current().get("tensorflow") is not None


def test_a_broken_image_definition_keeps_the_last_good_image_facts(catalog_dirs, caplog):
    """The catalog carries the images' capabilities read with it: an image.yaml broken on a
    running hub is reported at the next reload, and spawns keep the last good facts
    (pyspark stays a Hadoop client) instead of failing on the file."""
    catalog_dir, images_dir = catalog_dirs
    source = CatalogSource(catalog_dir, images_dir)
    assert source.current().images["pyspark"].hadoop_client
    (images_dir / "pyspark" / "image.yaml").write_text("hadoop_client: yes please\n")
    path = catalog_dir / "tensorflow.yaml"  # any catalog edit makes the source reload
    touch_later(path)
    with caplog.at_level(logging.ERROR):
        catalog = source.current()
    assert catalog.images["pyspark"].hadoop_client
    assert "pyspark/image.yaml: hadoop_client: must be a bool" in caplog.text
