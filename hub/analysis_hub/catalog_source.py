"""The catalog as a running hub sees it: reloaded on change, last good kept.

Contract: `CatalogSource.current()` returns the newest *valid* catalog. It
notices edits by the files' sizes and modification times (cheap enough for
every spawn and every form). When the files become invalid it keeps serving
the last good catalog and logs, once per broken state, every problem found.
Only the first load may raise: a hub does not start on a broken catalog.
Each change seen counts in `analysis_hub_catalog_reloads_total` (applied or rejected).
"""

from __future__ import annotations

import logging
from pathlib import Path

from .catalog import Catalog, CatalogError, load_catalog
from .metrics import CATALOG_RELOADS

_shared: dict[tuple, CatalogSource] = {}


class CatalogSource:
    def __init__(
        self,
        catalog_dir: str | Path,
        images_dir: str | Path,
        log: logging.Logger | None = None,
        known_images: tuple[str, ...] | None = None,
    ):
        self.catalog_dir = Path(catalog_dir)
        self.images_dir = Path(images_dir)
        self.known_images = known_images
        self.log = log or logging.getLogger("analysis_hub.catalog")
        self._fingerprint = self._current_fingerprint()
        self._catalog = load_catalog(self.catalog_dir, self.images_dir, self.known_images)
        self._rejected: tuple | None = None

    @classmethod
    def shared(
        cls, catalog_dir: str | Path, images_dir: str | Path, log=None, known_images=None
    ) -> CatalogSource:
        key = (Path(catalog_dir), Path(images_dir), known_images)
        if key not in _shared:
            _shared[key] = cls(*key[:2], log=log, known_images=known_images)
        return _shared[key]

    def current(self) -> Catalog:
        fingerprint = self._current_fingerprint()
        if fingerprint == self._fingerprint or fingerprint == self._rejected:
            return self._catalog
        try:
            catalog = load_catalog(self.catalog_dir, self.images_dir, self.known_images)
        except CatalogError as e:
            self._rejected = fingerprint
            CATALOG_RELOADS.labels("rejected").inc()
            self.log.error(
                "Catalog %s changed but is invalid; still serving the last good catalog (%s). %s",
                self.catalog_dir,
                ", ".join(p.slug for p in self._catalog.profiles),
                e,
            )
            return self._catalog
        self._fingerprint, self._rejected, self._catalog = fingerprint, None, catalog
        CATALOG_RELOADS.labels("applied").inc()
        self.log.info("Catalog reloaded: %s", ", ".join(p.slug for p in catalog.profiles))
        return catalog

    def _current_fingerprint(self) -> tuple:
        try:
            files = sorted(self.catalog_dir.glob("*.yaml"))
            return tuple((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in files)
        except OSError:
            return ()
