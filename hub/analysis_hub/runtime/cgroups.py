"""CPU and memory limits for a local server, enforced by the kernel's cgroups.

Contract:
- `Cgroup.create(parent, name, memory_bytes, cpu_cores)` makes a fresh cgroup
  `<parent>/<name>` (ending what a previous one of that name left) with those
  limits. Each hub has its own parent, so two hubs on one machine never
  touch each other's servers (cgroup v2, or the v1 `memory` and `cpu`
  controllers) and returns it; `available()` says whether this host lets us.
- `attach_self()` moves the calling process in. It runs in the child between
  fork and exec, so the server and every kernel it starts are inside.
- `oom_killed()` tells whether the kernel killed something for exceeding the
  memory limit; `kill_all()` and `remove()` clean up after the server.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
_CFS_PERIOD_US = 100_000


def version() -> int | None:
    """2 for the unified hierarchy, 1 for v1 controllers, None when unusable."""
    if (ROOT / "cgroup.controllers").is_file():
        return 2 if os.access(ROOT, os.W_OK) else None
    if (ROOT / "memory").is_dir() and (ROOT / "cpu").is_dir():
        return 1 if os.access(ROOT / "memory", os.W_OK) and os.access(ROOT / "cpu", os.W_OK) else None
    return None


def available() -> bool:
    return version() is not None


class Cgroup:
    def __init__(self, parent: str, name: str, dirs: list[Path], v: int):
        self.parent = parent
        self.name = name
        self.dirs = dirs
        self.version = v

    @classmethod
    def create(cls, parent: str, name: str, memory_bytes: int | None, cpu_cores: float | None) -> Cgroup:
        leftover = cls.open(parent, name)
        if leftover:
            leftover._clear_leftover()
        v = version()
        if v == 2:
            parent_dir = ROOT / parent
            parent_dir.mkdir(exist_ok=True)
            _write(ROOT / "cgroup.subtree_control", "+memory +cpu", missing_ok=True)
            _write(parent_dir / "cgroup.subtree_control", "+memory +cpu")
            path = parent_dir / name
            path.mkdir(exist_ok=True)
            _write(path / "memory.max", str(memory_bytes) if memory_bytes else "max")
            _write(path / "memory.swap.max", "0", missing_ok=True)
            quota = f"{int(cpu_cores * _CFS_PERIOD_US)} {_CFS_PERIOD_US}" if cpu_cores else "max"
            _write(path / "cpu.max", quota)
            return cls(parent, name, [path], 2)
        if v == 1:
            memory = ROOT / "memory" / parent / name
            cpu = ROOT / "cpu" / parent / name
            memory.mkdir(parents=True, exist_ok=True)
            cpu.mkdir(parents=True, exist_ok=True)
            # v1 insists memory <= memory+swap at every step: lift the swap cap, set
            # the limit, then cap memory+swap at the same value (no swap escape).
            # Without swap accounting the memsw file is absent: no swap to escape into.
            _write(memory / "memory.memsw.limit_in_bytes", "-1", missing_ok=True)
            _write(memory / "memory.limit_in_bytes", str(memory_bytes) if memory_bytes else "-1")
            if memory_bytes:
                _write(memory / "memory.memsw.limit_in_bytes", str(memory_bytes), missing_ok=True)
            _write(cpu / "cpu.cfs_period_us", str(_CFS_PERIOD_US))
            _write(cpu / "cpu.cfs_quota_us", str(int(cpu_cores * _CFS_PERIOD_US)) if cpu_cores else "-1")
            return cls(parent, name, [memory, cpu], 1)
        raise OSError("cgroups are not writable on this host")

    @classmethod
    def open(cls, parent: str, name: str) -> Cgroup | None:
        """The cgroup `create` made under this name (after a hub restart, say)."""
        v = version()
        if v == 2:
            return cls(parent, name, [ROOT / parent / name], 2)
        if v == 1:
            return cls(parent, name, [ROOT / "memory" / parent / name, ROOT / "cpu" / parent / name], 1)
        return None

    def attach_self(self) -> None:
        for path in self.dirs:
            _write(path / "cgroup.procs", str(os.getpid()))

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.dirs[0] / "cgroup.procs").read_text().split()]
        except FileNotFoundError:
            return []

    def oom_killed(self) -> bool:
        events = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            lines = (self.dirs[0] / events).read_text().splitlines()
        except FileNotFoundError:
            return False
        counters = dict(line.split() for line in lines if len(line.split()) == 2)
        return int(counters.get("oom_kill", 0)) > 0

    def kill_all(self) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def remove(self) -> None:
        for path in self.dirs:
            with contextlib.suppress(OSError):  # gone already, or still busy: create() clears it
                path.rmdir()

    def _clear_leftover(self) -> None:
        """Empty and remove an old cgroup of this name, so its OOM count starts at zero."""
        if not self.dirs[0].exists():
            return
        self.kill_all()
        for _ in range(100):  # killed processes leave the cgroup a moment after the signal
            if not self.pids():
                break
            time.sleep(0.02)
        self.remove()


def _write(path: Path, value: str, missing_ok: bool = False) -> None:
    try:
        path.write_text(value)
    except FileNotFoundError:
        if not missing_ok:
            raise
