"""The machine's NVIDIA GPUs, handed out one server at a time.

Contract:
- `detect_gpus()` lists GPU indices from `nvidia-smi` (none when it is
  absent or fails).
- `GpuPool.allocate(owner, n)` reserves `n` free GPUs for `owner` and
  returns their indices for `CUDA_VISIBLE_DEVICES`; `release(owner)` frees
  them; `claim(owner, indices)` restores an allocation after a hub restart.
  Allocation is pure bookkeeping, so it is unit-tested without a GPU.
"""

from __future__ import annotations

import shutil
import subprocess


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
    def __init__(self, indices: list[str]):
        self.indices = list(indices)
        self.owners: dict[str, list[str]] = {}

    @property
    def total(self) -> int:
        return len(self.indices)

    def free(self) -> list[str]:
        taken = {i for owned in self.owners.values() for i in owned}
        return [i for i in self.indices if i not in taken]

    def allocate(self, owner: str, n: int) -> list[str]:
        self.release(owner)
        if n == 0:
            return []
        free = self.free()
        if len(free) < n:
            raise GpuUnavailable(
                f"all {self.total} GPUs are in use ({len(free)} free, {n} needed); try again later"
                " or pick a CPU option"
            )
        self.owners[owner] = free[:n]
        return self.owners[owner]

    def claim(self, owner: str, indices: list[str]) -> None:
        self.owners[owner] = [i for i in indices if i in self.indices]

    def release(self, owner: str) -> None:
        self.owners.pop(owner, None)
