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

from .credentials import Credentials
from .oauth import github_team_groups
from .settings import Settings

PACKAGE_DIR = Path(__file__).resolve().parent
CULLER_SERVICE = "idle-culler"
# Seconds a launched server may take to answer its first request (JupyterHub: 30).
SERVER_ANSWER_TIMEOUT = 120
# The least the culler needs: find users and servers, read activity, stop servers.
CULLER_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
PIPELINES_SERVICE = "pipelines"
PIPELINES_ACCESS = f"access:services!service={PIPELINES_SERVICE}"


@dataclass(frozen=True)
class HostFacts:
    """What the machine allows; passed in so that `apply_settings` stays pure."""

    is_root: bool
    cgroups_writable: bool

    @classmethod
    def detect(cls) -> HostFacts:
        from .runtime import cgroups

        return cls(is_root=os.geteuid() == 0, cgroups_writable=cgroups.available())


def apply_settings(
    settings: Settings, c: Config, host: HostFacts | None = None, credentials: Credentials | None = None
) -> Config:
    host = host or HostFacts.detect()
    # Services and roles are collected from each area below.
    c.JupyterHub.services = []
    c.JupyterHub.load_roles = []
    apply_hub(settings, c)
    apply_auth(settings, c, credentials or Credentials())
    apply_culler(settings, c)
    apply_pipelines(settings, c)
    if settings.backend == "kubernetes":
        apply_kubernetes_backend(settings, c)
    elif settings.backend == "docker":
        apply_docker_backend(settings, c)
    else:
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
    # A started server may be slow to answer when many start at once: in the
    # 30-user crowd benchmark on 2 cores, JupyterHub's default of 30 s failed
    # 8 spawns that would have succeeded a few seconds later.
    c.Spawner.http_timeout = SERVER_ANSWER_TIMEOUT


def apply_auth(settings: Settings, c: Config, credentials: Credentials) -> None:
    auth = settings.auth
    c.Authenticator.admin_users = set(auth.admins)
    if auth.type == "builtin":
        c.JupyterHub.authenticator_class = "analysis_hub.auth.BuiltinAuthenticator"
        c.BuiltinAuthenticator.password_file = str(settings.hub_state_dir / "passwords.json")
        c.Authenticator.allowed_users = set(auth.users) | set(auth.admins)
        # Groups decide which profiles a user sees (the catalog's allowed_groups).
        c.JupyterHub.load_groups = {
            group: {"users": sorted(members)} for group, members in sorted(auth.groups.items())
        }
        return
    oauth = getattr(auth, auth.type)
    name = {"oidc": "OIDCAuthenticator", "github": "GitHubAuthenticator"}[auth.type]
    c.JupyterHub.authenticator_class = f"analysis_hub.oauth.{name}"
    authenticator = c[name]
    authenticator.client_id = oauth.client_id
    authenticator.client_secret = credentials.client_secret or ""
    hub = settings.hub
    authenticator.oauth_callback_url = (
        oauth.callback_url or f"http://{hub.ip}:{hub.port}{hub.base_url}hub/oauth_callback"
    )
    if auth.users:
        authenticator.allowed_users = set(auth.users)
    # Hub groups follow the provider's at every login, so the catalog's
    # allowed_groups and a group change at the provider apply at next login.
    authenticator.manage_groups = True
    authenticator.allowed_groups = set(oauth.allowed_groups)
    authenticator.admin_groups = set(oauth.admin_groups)
    # Keep the provider's tokens (encrypted) to re-check each user every
    # refresh_interval: a disabled account loses access within it.
    authenticator.enable_auth_state = True
    authenticator.auth_refresh_age = oauth.refresh_interval
    if credentials.auth_state_key:
        c.CryptKeeper.keys = [bytes.fromhex(credentials.auth_state_key)]
    if oauth.refresh_interval:
        # A server trusts a browser's token this long before asking the hub
        # again (default 300 s); no longer than the hub's own re-check.
        c.Spawner.args = [f"--HubOAuth.cache_max_age={min(300, oauth.refresh_interval)}"]
    if oauth.logout_url:
        authenticator.logout_redirect_url = oauth.logout_url
    if auth.type == "oidc":
        oidc = auth.oidc
        authenticator.login_service = oidc.display_name
        authenticator.authorize_url = oidc.authorize_url
        authenticator.token_url = oidc.token_url
        authenticator.userdata_url = oidc.userinfo_url
        authenticator.username_claim = oidc.username_claim
        authenticator.scope = list(oidc.scopes)
        authenticator.auth_state_groups_key = f"oauth_user.{oidc.groups_claim}"
    else:
        authenticator.allowed_organizations = set(auth.github.allowed_organizations)
        # Teams become hub groups (`org:team`); reading them needs read:org.
        authenticator.scope = ["read:org"]
        authenticator.populate_teams_in_auth_state = True
        authenticator.auth_state_groups_key = github_team_groups


def apply_culler(settings: Settings, c: Config) -> None:
    culler = settings.culler
    # Servers report real activity as often as the culler looks at it.
    c.LocalProfileSpawner.activity_interval = culler.every
    if not culler.enabled:
        return
    c.JupyterHub.services.append(
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
    )
    c.JupyterHub.load_roles.append(
        {"name": CULLER_SERVICE, "scopes": CULLER_SCOPES, "services": [CULLER_SERVICE]}
    )


def apply_pipelines(settings: Settings, c: Config) -> None:
    pipelines = settings.pipelines
    if not pipelines.enabled:
        return
    c.JupyterHub.services.append(
        {
            "name": PIPELINES_SERVICE,
            "url": f"http://127.0.0.1:{pipelines.port}",
            "command": [sys.executable, "-m", "analysis_hub.pipelines"],
            # The resolved settings, so the service sees exactly what the hub sees.
            "environment": {"ANALYSIS_HUB_SETTINGS_JSON": settings.model_dump_json()},
            "oauth_no_confirm": True,
            # A browser's login tells the service who the user is, their groups and admin flag.
            "oauth_client_allowed_scopes": ["read:users!user"],
            "display": True,
        }
    )
    # The service itself calls nothing on the hub: its token needs no scopes.
    c.JupyterHub.load_roles.append({"name": PIPELINES_SERVICE, "scopes": [], "services": [PIPELINES_SERVICE]})
    # Users' own API tokens (the CLI's) may reach the service.
    c.JupyterHub.load_roles.append({"name": "user", "scopes": ["self", PIPELINES_ACCESS]})


def apply_local_backend(settings: Settings, c: Config, host: HostFacts) -> None:
    local = settings.local
    c.JupyterHub.spawner_class = "analysis_hub.backends.local.spawner.LocalProfileSpawner"
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
    spawner.cgroup_parent = cgroup_parent_for(settings)
    # A first spawn of a profile builds its environment (minutes); later ones take seconds.
    spawner.start_timeout = local.start_timeout
    # Notice a server the kernel killed for memory within seconds, not the default 30.
    spawner.poll_interval = 10


def apply_kubernetes_backend(settings: Settings, c: Config) -> None:
    # Imported here: kubespawner (and its Kubernetes client) only where this backend runs.
    from .backends.kubernetes.spawner import catalog_profile_list

    c.JupyterHub.spawner_class = "analysis_hub.backends.kubernetes.spawner.CatalogKubeSpawner"
    spawner = c.CatalogKubeSpawner
    spawner.catalog_dir = str(settings.catalog)
    spawner.images_dir = str(settings.images_dir)
    spawner.image_references = dict(settings.kubernetes.images)
    spawner.hadoop_configmap = settings.kubernetes.hadoop_configmap or ""
    spawner.krb5_conf = settings.kubernetes.krb5_conf
    spawner.spark_service_account = settings.kubernetes.spark_service_account or ""
    # Named explicitly: the Zero to JupyterHub chart sets KubeSpawner.profile_list ([] by default).
    spawner.profile_list = catalog_profile_list
    # Secure by default: the images' jovyan user, no way to gain privileges,
    # no Linux capabilities, and no Kubernetes API token inside users' pods.
    spawner.uid = 1000
    spawner.fs_gid = 100
    spawner.allow_privilege_escalation = False
    spawner.container_security_context = {"capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True}
    spawner.automount_service_account_token = False
    spawner.start_timeout = settings.local.start_timeout


def apply_docker_backend(settings: Settings, c: Config) -> None:
    docker = settings.docker
    c.JupyterHub.spawner_class = "analysis_hub.backends.docker.spawner.CatalogDockerSpawner"
    spawner = c.CatalogDockerSpawner
    spawner.catalog_dir = str(settings.catalog)
    spawner.images_dir = str(settings.images_dir)
    spawner.image_tags_file = str(docker.image_tags_file)
    spawner.image_references = dict(docker.images)
    spawner.hadoop_conf_dir = str(docker.hadoop_conf_dir or "")
    # Containers and home volumes carry this hub's name: two hubs on one
    # engine never adopt or remove each other's servers.
    spawner.prefix = cgroup_parent_for(settings)
    # A container per server, removed when it stops; the home is a named volume that stays.
    spawner.remove = True
    # Servers report real activity as often as the culler looks at it.
    spawner.activity_interval = settings.culler.every
    spawner.start_timeout = docker.start_timeout
    # Notice a container that died (memory limit, crash) within seconds.
    spawner.poll_interval = 10


def cgroup_parent_for(settings: Settings) -> str:
    """One cgroup per hub (named after its data directory): two hubs on one
    machine must never clean up each other's servers or runs."""
    return "analysis-hub-" + hashlib.sha256(str(settings.data_dir).encode()).hexdigest()[:8]
