"""The pipelines service's state folder: who may read what underneath the API (I/O).

Contract: `secure_state(data_dir, log)` gives the folder the modes below,
creating what is missing and tightening what an older installation left open,
and logs each change (path, old mode, new mode). The service calls it at every
start, after opening the database, so existing installations are migrated in
place and keep their data. Owners are left alone: run folders stay their run
user's.

| path                          | mode | why                                               |
|-------------------------------|------|---------------------------------------------------|
| `<data_dir>/`                 | 0711 | run users pass through to their own run folder    |
| `pipelines.sqlite` (+ journal)| 0600 | audit, parameters, webhook URLs: the service only |
| `repos/`                      | 0700 | every team's notebooks and history                |
| `runs/`                       | 0711 | run folders are reached by number, never listed   |
| `runs/<n>/`                   | 0700 | one run's files, owned by its team's run user     |
| `homes/`                      | 0711 | each team run user's own 0700 home                |

People read runs and versions only through the service, which decides team
membership; nothing below the folder is readable by another Unix user.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

TRAVERSE_ONLY = 0o711  # others may pass through to a path they know, never list
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
SQLITE_FILES = (
    "pipelines.sqlite",
    "pipelines.sqlite-journal",
    "pipelines.sqlite-wal",
    "pipelines.sqlite-shm",
)


def secure_state(data_dir: Path, log: logging.Logger) -> None:
    repos, runs, homes = data_dir / "repos", data_dir / "runs", data_dir / "homes"
    for folder in (data_dir, repos, runs, homes):
        folder.mkdir(parents=True, exist_ok=True)
    wanted = {data_dir: TRAVERSE_ONLY, repos: PRIVATE_DIR, runs: TRAVERSE_ONLY, homes: TRAVERSE_ONLY}
    wanted.update({data_dir / name: PRIVATE_FILE for name in SQLITE_FILES if (data_dir / name).exists()})
    wanted.update({run: PRIVATE_DIR for run in runs.iterdir() if run.is_dir()})
    for path, mode in wanted.items():
        set_mode(path, mode, log)


def set_mode(path: Path, mode: int, log: logging.Logger) -> None:
    old = stat.S_IMODE(path.stat().st_mode)
    if old != mode:
        os.chmod(path, mode)
        log.info("pipelines state: %s mode %04o -> %04o", path, old, mode)
