"""What a hub that did not stop cleanly left behind, handled before `analysis-hub up` starts (I/O).

A hub killed with SIGKILL (or by the OOM killer, or a crash) leaves its
proxy and managed services running: they were started in sessions of their
own. The next start would then fail on the proxy's ports, or start a second
pipelines service beside the first (two schedulers), or a second culler.

Contract: `clear_leftovers(settings)` returns "warning: ..."/"error: ..."
lines for `up` to print, and acts:
- a hub from this data folder that still runs (`jupyterhub.pid` names it)
  is an error: two hubs would share one database; nothing is stopped;
- the proxy named by `proxy.pid` in the hub's state folder, checked to be
  still that proxy (`processes.recorded_pid`), is stopped; a pid file that
  names any other process is removed, so that JupyterHub's own check, which
  signals the pid without looking at it, can't hit an unrelated process;
- the managed services of this hub (`Settings.instance_name` in their
  environment) are stopped.
`port_problems(settings)` then names every port `up` will listen on that
another process holds: the setting, the port, the pid and its command (or
that it belongs to another user), as "error: ..." lines. Users' servers are
never touched: the new hub finds them again.
"""

from __future__ import annotations

import errno
import os
import socket
from typing import TYPE_CHECKING

from . import processes

if TYPE_CHECKING:
    from .settings import Settings

# In the hub's state folder; config.apply_hub_process points JupyterHub at them.
HUB_PID_FILE = "jupyterhub.pid"
PROXY_PID_FILE = "proxy.pid"
STOP_GRACE_S = 3.0
LEFT_BY = "left running by a hub that did not stop cleanly"


def clear_leftovers(settings: Settings) -> list[str]:
    state = settings.hub_state_dir
    hub = processes.recorded_pid(state / HUB_PID_FILE, "analysis")
    if hub and hub != os.getpid():
        return [
            f"error: a hub from {settings.data_dir} is still running (pid {hub}); stop it first"
            f" (kill -TERM {hub}) or give this one another data_dir"
        ]
    lines = []
    proxy_file = state / PROXY_PID_FILE
    proxy = processes.recorded_pid(proxy_file, os.path.basename(settings.hub.proxy_command[0]))
    if proxy:
        processes.stop_groups([proxy], STOP_GRACE_S)
        lines.append(f"warning: stopped the proxy (pid {proxy}) {LEFT_BY}; a new one starts")
    proxy_file.unlink(missing_ok=True)
    services = processes.instance_services(settings.instance_name)
    if services:
        processes.stop_groups(list(services), STOP_GRACE_S)
        lines += [
            f"warning: stopped the {name} service (pid {pid}) {LEFT_BY}; a new one starts"
            for pid, name in services.items()
        ]
    return lines


def listening_ports(settings: Settings) -> list[tuple[str, str, int]]:
    """(setting, address, port) of every socket `up` listens on."""
    hub = settings.hub
    ports = [
        ("hub.port", hub.ip, hub.port),
        ("hub.proxy_api_port", "127.0.0.1", hub.proxy_api_port),
        ("hub.internal_port", "127.0.0.1", hub.internal_port),
    ]
    if settings.pipelines.enabled:
        ports.append(("pipelines.port", "127.0.0.1", settings.pipelines.port))
    return ports


def port_problems(settings: Settings) -> list[str]:
    problems = []
    for setting, address, port in listening_ports(settings):
        if not _taken(address, port):
            continue
        holders = [f"pid {pid} ({processes.command_line(pid)[:120]})" for pid in processes.listeners(port)]
        by = ", ".join(holders) or "a process of another user"
        problems.append(f"error: port {port} ({setting}) is in use by {by}; stop it or set {setting}")
    return problems


def _taken(address: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family) as probe:
        # Only a listening socket counts, not connections closed a moment ago (TIME_WAIT).
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address if address not in ("0.0.0.0", "::") else "", port))
        except OSError as e:
            return e.errno == errno.EADDRINUSE
    return False
