"""Settings -> JupyterHub traitlets, by pure functions.

Contract: `apply_settings(settings, c)` only *sets* traits on a
`traitlets.config.Config`; it reads no files and starts nothing, so a unit
test can build a bare `Config()` and assert every trait. One function per
area, as The Littlest JupyterHub's configurer does. Paths in `settings` are
already absolute (see `settings.resolve_paths`).

A short comment above each non-default trait says why it is set.
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from traitlets.config import Config

from .settings import Settings

PACKAGE_DIR = Path(__file__).resolve().parent
CULLER_SERVICE = "idle-culler"
# The least the culler needs: find users and servers, read activity, stop servers.
CULLER_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]


@dataclass(frozen=True)
class HostFacts:
    """What the machine allows; passed in so that `apply_settings` stays pure."""

    is_root: bool
    cgroups_writable: bool

    @classmethod
    def detect(cls) -> HostFacts:
        from .local import cgroups

        return cls(is_root=os.geteuid() == 0, cgroups_writable=cgroups.available())


def apply_settings(settings: Settings, c: Config, host: HostFacts | None = None) -> Config:
    host = host or HostFacts.detect()
    apply_hub(settings, c)
    apply_auth(settings, c)
    apply_culler(settings, c)
    apply_local_backend(settings, c, host)
    return c


def apply_hub(settings: Settings, c: Config) -> None:
    hub, state = settings.hub, settings.hub_state_dir
    c.JupyterHub.bind_url = f"http://{hub.ip}:{hub.port}{hub.base_url}"
    c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{hub.internal_port}"
    c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
    c.JupyterHub.pid_file = str(state / "jupyterhub.pid")
    c.JupyterHub.log_level = hub.log_level
    # Users' servers outlive a hub restart (upgrades, config changes).
    c.JupyterHub.cleanup_servers = False
    c.ConfigurableHTTPProxy.command = list(hub.proxy_command)
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{hub.proxy_api_port}"
    c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")
    # Proxy traffic (an open tab's polling) is not activity; see activity.py.
    c.JupyterHub.proxy_class = "analysis_hub.activity.ServerReportedActivityProxy"
    # Our pages (stop reasons) first, JupyterHub's behind them.
    c.JupyterHub.template_paths = [str(PACKAGE_DIR / "templates")]
    # Land in JupyterLab, not the classic tree.
    c.Spawner.default_url = "/lab"


def apply_auth(settings: Settings, c: Config) -> None:
    auth = settings.auth
    c.JupyterHub.authenticator_class = "analysis_hub.auth.BuiltinAuthenticator"
    c.BuiltinAuthenticator.password_file = str(settings.hub_state_dir / "passwords.json")
    c.Authenticator.admin_users = set(auth.admins)
    c.Authenticator.allowed_users = set(auth.users) | set(auth.admins)
    # Groups decide which profiles a user sees (the catalog's allowed_groups).
    c.JupyterHub.load_groups = {
        group: {"users": sorted(members)} for group, members in sorted(auth.groups.items())
    }


def apply_culler(settings: Settings, c: Config) -> None:
    culler = settings.culler
    # Servers report real activity as often as the culler looks at it.
    c.LocalProfileSpawner.activity_interval = culler.every
    if not culler.enabled:
        c.JupyterHub.services = []
        c.JupyterHub.load_roles = []
        return
    c.JupyterHub.services = [
        {
            "name": CULLER_SERVICE,
            "command": [
                sys.executable,
                "-m",
                "jupyterhub_idle_culler",
                f"--timeout={culler.timeout}",
                f"--cull-every={culler.every}",
            ],
        }
    ]
    c.JupyterHub.load_roles = [
        {"name": CULLER_SERVICE, "scopes": CULLER_SCOPES, "services": [CULLER_SERVICE]}
    ]


def apply_local_backend(settings: Settings, c: Config, host: HostFacts) -> None:
    local = settings.local
    c.JupyterHub.spawner_class = "analysis_hub.local.spawner.LocalProfileSpawner"
    spawner = c.LocalProfileSpawner
    spawner.catalog_dir = str(settings.catalog)
    spawner.images_dir = str(settings.images_dir)
    spawner.envs_dir = str(local.envs_dir)
    spawner.python = local.python or ""
    isolate = local.isolation == "unix-users" or (local.isolation == "auto" and host.is_root)
    spawner.isolate_users = isolate
    default_homes = Path("/home") if isolate else settings.data_dir / "homes"
    spawner.homes_dir = str(local.homes_dir or default_homes)
    spawner.use_cgroups = local.cgroups == "required" or (local.cgroups == "auto" and host.cgroups_writable)
    # One cgroup per hub (named after its data directory): two hubs on one
    # machine must never clean up each other's servers.
    spawner.cgroup_parent = "analysis-hub-" + hashlib.sha256(str(settings.data_dir).encode()).hexdigest()[:8]
    # A first spawn of a profile builds its environment (minutes); later ones take seconds.
    spawner.start_timeout = local.start_timeout
    # Notice a server the kernel killed for memory within seconds, not the default 30.
    spawner.poll_interval = 10
