"""The local backend's wiring: a process per user server, in the machine's sandbox (see `backends`).

Contract: `BACKEND` sets `LocalProfileSpawner` and its traits (pure), says
what `up` must warn about (not root: no per-user isolation; no writable
cgroups: no limits), and gives the pipelines service the `LocalExecutor`,
which runs notebooks in the same sandbox as the servers.
"""

from __future__ import annotations

from pathlib import Path

from .. import OneMachine
from .translate import isolates_users, team_folders_root


class LocalBackend(OneMachine):
    name = "local"

    def apply(self, settings, c, host) -> None:
        local = settings.local
        c.JupyterHub.spawner_class = "analysis_hub.backends.local.spawner.LocalProfileSpawner"
        spawner = c.LocalProfileSpawner
        spawner.envs_dir = str(local.envs_dir)
        spawner.python = local.python or ""
        isolate = isolates_users(settings, host)
        spawner.isolate_users = isolate
        default_homes = Path("/home") if isolate else settings.data_dir / "homes"
        spawner.homes_dir = str(local.homes_dir or default_homes)
        spawner.use_cgroups = local.cgroups == "required" or (
            local.cgroups == "auto" and host.cgroups_writable
        )
        spawner.cgroup_parent = settings.instance_name
        spawner.teams_dir = str(team_folders_root(settings))

    def preflight(self, settings, host) -> list[str]:
        problems = []
        local = settings.local
        if local.isolation == "unix-users" and not host.is_root:
            problems.append("error: local.isolation is unix-users, which needs the hub to run as root")
        elif local.isolation == "auto" and not host.is_root:
            problems.append(
                "warning: the hub is not running as root, so every user's server runs as your own"
                " Unix user and users are not isolated from each other; run as root for per-user isolation"
            )
        if not host.cgroups_writable:
            if local.cgroups == "required":
                problems.append("error: local.cgroups is required but /sys/fs/cgroup is not writable here")
            elif local.cgroups == "auto":
                problems.append(
                    "warning: cgroups are not writable here, so profile CPU and memory limits are"
                    " not enforced (they still show in the form)"
                )
        return problems

    def start_timeout(self, settings) -> int:
        return settings.local.start_timeout

    def executor(self, settings):
        from .executor import local_executor

        return local_executor(settings)


BACKEND = LocalBackend()
