"""The hub's own processes as Linux shows them in /proc: who they are, and stopping them (I/O).

Contract:
- `alive(pid)` is False for a process that is gone or a zombie (exited,
  not yet reaped: it holds no port and runs nothing).
- `recorded_pid(pid_file, command)` is the pid a pid file names only while
  that process is still the one recorded: alive, its command line contains
  `command`, and it started before the file was written. A pid reused by an
  unrelated process after a reboot or a crash is never returned, so nothing
  innocent is ever signalled.
- `instance_services(instance)`: the managed services (idle culler,
  pipelines service) of the hub `instance` (`Settings.instance_name`),
  found by the `INSTANCE_ENV` variable the hub puts in their environment
  (`config.mark_managed_services`); readable for processes of this Unix user.
- `stop_groups(pids, grace_s)` sends SIGTERM to each pid's process group,
  waits up to `grace_s`, then SIGKILLs what is left, and returns the pids it
  had to kill. The hub starts its proxy and services as the leaders of
  their own sessions, so the group is the process and what it started.
- `listeners(port)`: the pids with a TCP socket listening on `port`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

INSTANCE_ENV = "ANALYSIS_HUB_INSTANCE"
SERVICE_ENV = "JUPYTERHUB_SERVICE_NAME"  # JupyterHub sets it for every managed service
PROC = Path("/proc")
TCP_LISTEN = "0A"


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    return text.rpartition(")")[2].split()


def alive(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def _zombie(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] == "Z"


def parent(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def started_at(pid: int) -> float | None:
    """When the process started, in seconds since the epoch."""
    fields = _stat_fields(pid)
    if not fields:
        return None
    boot = next(
        int(line.split()[1]) for line in (PROC / "stat").read_text().splitlines() if line.startswith("btime")
    )
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of stat: start time in ticks


def command_line(pid: int) -> str:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def environment(pid: int) -> dict[str, str]:
    try:
        raw = (PROC / str(pid) / "environ").read_bytes()
    except OSError:  # gone, or another user's
        return {}
    pairs = (item.decode(errors="replace").partition("=") for item in raw.split(b"\0") if item)
    return {key: value for key, _, value in pairs}


def all_pids() -> list[int]:
    return [int(p.name) for p in PROC.iterdir() if p.name.isdigit()]


def recorded_pid(pid_file: Path, command: str) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
        written = pid_file.stat().st_mtime
    except (OSError, ValueError):
        return None
    started = started_at(pid)
    # A second of slack: the start time is counted in clock ticks, the file's time is exact.
    if not alive(pid) or started is None or started > written + 1 or command not in command_line(pid):
        return None
    return pid


def instance_services(instance: str) -> dict[int, str]:
    """pid -> service name of the running managed services of hub `instance`."""
    found = {}
    for pid in all_pids():
        env = environment(pid)
        if env.get(INSTANCE_ENV) == instance and SERVICE_ENV in env and alive(pid):
            found[pid] = env[SERVICE_ENV]
    return found


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid and pid != os.getpgid(0):
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def stop_groups(pids: list[int], grace_s: float) -> list[int]:
    for pid in pids:
        _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    killed = [pid for pid in pids if alive(pid)]
    for pid in pids:
        # A leader that exited may have left members of its group behind. While the leader
        # is an unreaped zombie (our child), its pid, and so the group's id, can't be reused.
        if pid in killed or _zombie(pid):
            _signal_group(pid, signal.SIGKILL)
    deadline = time.monotonic() + 1
    while any(alive(pid) for pid in killed) and time.monotonic() < deadline:
        time.sleep(0.05)
    return killed


def listeners(port: int) -> list[int]:
    inodes = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in (PROC / "net" / table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == TCP_LISTEN and int(fields[1].rpartition(":")[2], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return []
    holders = []
    for pid in all_pids():
        with contextlib.suppress(OSError):
            for fd in (PROC / str(pid) / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        holders.append(pid)
                        break
    return holders
