"""The admin's mistakes that every command reports the same way: `file: key: reason` lines.

Contract: `SettingsError` (a settings file, see `settings.load_settings`) and
`CatalogError` (a profile catalog, see `catalog.load_catalog`) carry every
problem found, one per line in `problems`. They live here, apart from the
pydantic models that raise them, so that `cli.main` can catch them without
importing those models for commands that never read a settings file.
"""

from __future__ import annotations


class SettingsError(ValueError):
    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"invalid settings in {source}:\n  " + "\n  ".join(problems))


class CatalogError(ValueError):
    """Every problem found in a catalog, one `file: key: reason` per line."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid profile catalog:\n  " + "\n  ".join(problems))
