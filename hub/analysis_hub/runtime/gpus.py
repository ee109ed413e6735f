"""The machine's NVIDIA GPUs, handed out to servers and pipeline runs, one owner at a time.

Contract:
- `detect_gpus()` lists GPU indices from `nvidia-smi` (none when it is
  absent or fails).
- `GpuPool.allocate(owner, n)` reserves `n` free GPUs for `owner` and
  returns their indices for `CUDA_VISIBLE_DEVICES` / a container's device
  request; `release(owner)` frees them; `claim(owner, indices)` restores an
  allocation after a restart.
- With a `state_file`, the allocations live in that file and every
  operation holds an exclusive `flock` on it, so the hub's spawners and the
  pipelines service (two processes) take from ONE pool and never hand out
  the same GPU twice. Without one (unit tests), the pool is in memory.
- `machine_gpu_pool(state_file)` is this process's pool for that file,
  detected once. Owners are hub servers (`alice`, `alice-named`) and runs
  (`run/<id>`, `run/<id>/<step>`: a `/` can't appear in a hub user name).
Allocation is bookkeeping, so it is tested without a GPU.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path


def detect_gpus() -> list[str]:
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (subprocess.SubprocessError, OSError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


class GpuUnavailable(RuntimeError):
    pass


class GpuPool:
    def __init__(self, indices: list[str], state_file: str | Path | None = None):
        self.indices = list(indices)
        self.state_file = Path(state_file) if state_file else None
        self._owners: dict[str, list[str]] = {}

    @property
    def total(self) -> int:
        return len(self.indices)

    @property
    def owners(self) -> dict[str, list[str]]:
        with self._locked() as owners:
            return dict(owners)

    def free(self) -> list[str]:
        with self._locked() as owners:
            return self._free(owners)

    def allocate(self, owner: str, n: int) -> list[str]:
        with self._locked() as owners:
            owners.pop(owner, None)
            if n == 0:
                return []
            free = self._free(owners)
            if len(free) < n:
                raise GpuUnavailable(
                    f"all {self.total} GPUs are in use ({len(free)} free, {n} needed); try again later"
                    " or pick a CPU option"
                )
            owners[owner] = free[:n]
            return list(owners[owner])

    def claim(self, owner: str, indices: list[str]) -> None:
        with self._locked() as owners:
            owners[owner] = [i for i in indices if i in self.indices]

    def release(self, owner: str) -> None:
        with self._locked() as owners:
            owners.pop(owner, None)

    def _free(self, owners: dict[str, list[str]]) -> list[str]:
        taken = {i for owned in owners.values() for i in owned}
        return [i for i in self.indices if i not in taken]

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, list[str]]]:
        """The owners table, read and written back under an exclusive lock when kept in a file."""
        if self.state_file is None:
            yield self._owners
            return
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.state_file, os.O_RDWR | os.O_CREAT, 0o600)
        with os.fdopen(fd, "r+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)  # released when the file closes
            text = f.read()
            try:
                owners = json.loads(text) if text.strip() else {}
            except ValueError:
                owners = {}  # a torn write from a killed process: start from nothing held
            before = json.dumps(owners, sort_keys=True)
            yield owners
            after = json.dumps(owners, sort_keys=True)
            if after != before:
                f.seek(0)
                f.truncate()
                f.write(after)
                f.flush()
                os.fsync(f.fileno())


_pools: dict[str, GpuPool] = {}


def machine_gpu_pool(state_file: str | Path | None = None) -> GpuPool:
    """This process's view of the machine's pool; GPUs are detected once per process."""
    key = str(state_file or "")
    if key not in _pools:
        _pools[key] = GpuPool(detect_gpus(), state_file)
    return _pools[key]
