"""What a person watching an environment build sees: phases and counts, not pip's lines.

Contract (pure):
- `Step` is a progress line: a `str` (what the spawn page shows) with
  `done`, the fraction of the build finished (0..1), or None when it says
  nothing about how far the build is (a waiting notice, an error line).
- `PipProgress(total)` reads pip's output for a lock file of `total` pinned
  packages. `line(text)` returns the `Step` to show for one line of pip's
  output, or None: packages fetched are counted ("Fetching packages: 40 of
  130", once per tenth of them), the install is one line ("Installing 130
  packages") and its end another ("Installed 130 packages"); pip's own ERROR
  lines pass through as they are. `waiting(seconds)` is the line for a
  silent pip: installing prints nothing for a minute or more, so the spawn
  page says how long it has taken so far, and its bar creeps on (towards,
  never reaching, the end of the install) instead of standing still.
- `requirement_count(lock_files)` counts the pinned packages of lock files.
"""

from __future__ import annotations

import math
from pathlib import Path

FETCHED = ("Collecting ", "Processing ")  # pip: from an index / from a local wheel
INSTALLING = "Installing collected packages:"
INSTALLED = "Successfully installed"
# Shares of the build: creating the venv, fetching, installing (the rest: the ready marker).
FETCH_FROM, INSTALL_FROM, INSTALLED_AT = 0.05, 0.5, 0.97
INSTALL_PACE_S = 90  # how the bar creeps through a silent install: 63 % of the way in this long


class Step(str):
    done: float | None = None

    def __new__(cls, text: str, done: float | None = None):
        step = super().__new__(cls, text)
        step.done = done
        return step


def requirement_count(lock_files: list[Path]) -> int:
    lines = (line.split("#")[0].strip() for f in lock_files for line in f.read_text().splitlines())
    return sum(1 for line in lines if line and not line.startswith("-"))


class PipProgress:
    def __init__(self, total: int):
        self.total = total
        self.fetched = 0
        self.installing = 0  # packages pip is installing, once it says so
        self._shown_tenth = 0

    def line(self, text: str) -> Step | None:
        if text.startswith("ERROR"):
            return Step(text)
        if text.startswith(FETCHED) and not self.installing:
            return self._fetched_one()
        if text.startswith(INSTALLING):
            self.installing = len(text[len(INSTALLING) :].split(",")) or self.total
            return Step(f"Installing {_packages(self.installing)}", INSTALL_FROM)
        if text.startswith(INSTALLED):
            installed = len(text[len(INSTALLED) :].split())
            return Step(f"Installed {_packages(installed)}", INSTALLED_AT)
        return None

    def waiting(self, seconds: float) -> Step | None:
        """The line for `seconds` of silence from pip while it installs; None in other phases."""
        if not self.installing:
            return None
        crept = (INSTALLED_AT - INSTALL_FROM) * (1 - math.exp(-seconds / INSTALL_PACE_S))
        return Step(f"Installing {_packages(self.installing)} ({seconds:.0f} s so far)", INSTALL_FROM + crept)

    def _fetched_one(self) -> Step | None:
        self.fetched = min(self.fetched + 1, max(self.total, 1))
        tenth = self.fetched * 10 // max(self.total, 1)
        if tenth <= self._shown_tenth and self.fetched != 1:
            return None
        self._shown_tenth = tenth
        done = FETCH_FROM + (INSTALL_FROM - FETCH_FROM) * self.fetched / max(self.total, 1)
        return Step(f"Fetching packages: {self.fetched} of {self.total}", done)


def _packages(n: int) -> str:
    return f"{n} package{'' if n == 1 else 's'}"
