"""CPU and memory of running processes, read from psutil and /proc.

Contract:
- `ProcessSampler(pids)` samples named processes in a background thread
  every `interval` seconds between `start()` and `stop()`; `stop()` returns,
  per name, the CPU seconds the process itself used in that window (user +
  system, children not included), its mean and peak CPU percent (100 = one
  core), and its peak resident memory, both sampled and as the kernel's
  high-water mark (VmHWM, the true peak since the process started).
- `peak_rss_bytes(pid)` (VmHWM) and `rss_bytes(pid)` (VmRSS) read one
  process; a process that is gone reads as None, never raises.
- `machine()` describes the machine the figures come from.
"""

from __future__ import annotations

import contextlib
import os
import platform
import threading
import time
from pathlib import Path

import psutil


def _status_kib(pid: int, field: str) -> int | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def peak_rss_bytes(pid: int) -> int | None:
    kib = _status_kib(pid, "VmHWM")
    return None if kib is None else kib * 1024


def rss_bytes(pid: int) -> int | None:
    kib = _status_kib(pid, "VmRSS")
    return None if kib is None else kib * 1024


def machine() -> dict:
    memory = psutil.virtual_memory()
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "host": platform.node(),
        "os": platform.platform(),
        "cpu": cpu_model,
        "cores": os.cpu_count(),
        "memory_gib": round(memory.total / 2**30, 1),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "running_as_root": os.geteuid() == 0,
    }


class ProcessSampler:
    def __init__(self, pids: dict[str, int | None], interval: float = 0.5):
        self.interval = interval
        self._processes = {}
        for name, pid in pids.items():
            if pid:
                with contextlib.suppress(psutil.Error):
                    self._processes[name] = psutil.Process(pid)
        self._cpu_start: dict[str, float] = {}
        self._cpu_end: dict[str, float] = {}
        self._percents: dict[str, list[float]] = {name: [] for name in self._processes}
        self._rss_peak: dict[str, int] = dict.fromkeys(self._processes, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started_at = 0.0
        self._stopped_at = 0.0

    def start(self) -> ProcessSampler:
        for name, process in self._processes.items():
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                self._cpu_start[name] = times.user + times.system
                process.cpu_percent(None)  # primes the next reading
        self._started_at = time.monotonic()
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        for name, process in self._processes.items():
            with contextlib.suppress(psutil.Error):
                self._percents[name].append(process.cpu_percent(None))
                self._rss_peak[name] = max(self._rss_peak[name], process.memory_info().rss)
                times = process.cpu_times()
                self._cpu_end[name] = times.user + times.system

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        self._sample()
        self._stopped_at = time.monotonic()
        window = self._stopped_at - self._started_at
        result = {}
        for name, process in self._processes.items():
            percents = self._percents[name]
            cpu_s = self._cpu_end.get(name, 0.0) - self._cpu_start.get(name, 0.0)
            result[name] = {
                "cpu_s": round(cpu_s, 2),
                "cpu_mean_pct": round(100 * cpu_s / window, 1) if window else None,
                "cpu_peak_pct": round(max(percents), 1) if percents else None,
                "rss_peak_mib": round(self._rss_peak[name] / 2**20, 1),
                "rss_high_water_mib": _mib(peak_rss_bytes(process.pid)),
            }
        result["window_s"] = round(window, 1)
        return result


def _mib(value: int | None) -> float | None:
    return None if value is None else round(value / 2**20, 1)
