"""Settings -> JupyterHub traitlets, by pure functions.

Contract: `apply_settings(settings, c)` only *sets* traits on a
`traitlets.config.Config`; it reads no files and starts nothing, so a unit
test can build a bare `Config()` and assert every trait. One function per
area, as The Littlest JupyterHub's configurer does. Paths in `settings` are
already absolute (see `settings.resolve_paths`).

Two parts, so that both entry points share one policy:
- `apply_policy(settings, c, credentials, host)` is what every deployment's hub
  needs: `apply_hub_policy` (the activity proxy, our pages, the request log
  that counts idle culls, JupyterLab, the server answer timeout, the servers'
  way to the pipelines service), the login, the catalog spawner and the
  backend's spawner. `apply_settings` (the one-machine `up`) and
  `backends.kubernetes.z2jh.apply_under_z2jh` (z2jh's hook) both call it;
  tests/unit/test_kubernetes_hub_policy.py compares it with both, trait by trait.
- `apply_hub_process` is the one-machine hub's process (bind URLs, SQLite,
  cookie secret, pid files, the proxy it starts), and `apply_culler` /
  `apply_pipelines` the services it starts; under z2jh the chart owns those.

A short comment above each non-default trait says why it is set.
"""

from __future__ import annotations

import sys
from pathlib import Path

from traitlets.config import Config

from .backends import HostFacts, backend_for
from .credentials import Credentials
from .hub_metrics import request_log
from .leftovers import HUB_PID_FILE, PROXY_PID_FILE
from .oauth import github_team_groups
from .processes import INSTANCE_ENV
from .settings import Settings
from .usage import USAGE_FILE

PACKAGE_DIR = Path(__file__).resolve().parent
CULLER_SERVICE = "idle-culler"
# jupyterhub-idle-culler's sweep with each server's own idle timeout (culling.py).
CULLER_MODULE = "analysis_hub.culling"
# Seconds a launched server may take to answer its first request (JupyterHub: 30).
SERVER_ANSWER_TIMEOUT = 120
# The least the culler needs: find users and servers, read activity, stop servers.
CULLER_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
PIPELINES_SERVICE = "pipelines"
PIPELINES_ACCESS = f"access:services!service={PIPELINES_SERVICE}"
# A server's own $JUPYTERHUB_API_TOKEN: JupyterHub's `server` role (activity, its own
# server) plus the pipelines service, so the lab extension publishes as its user without
# the user handling a token. The hub gives a token only the scopes its user holds, and
# the service still checks team membership (a token always identifies its user's groups).
SERVER_TOKEN_SCOPES = ["users:activity!user", "access:servers!server", PIPELINES_ACCESS]


def apply_settings(
    settings: Settings, c: Config, host: HostFacts | None = None, credentials: Credentials | None = None
) -> Config:
    host = host or HostFacts.detect()
    # Services and roles are collected from each area below.
    c.JupyterHub.services = []
    c.JupyterHub.load_roles = []
    apply_hub_process(settings, c)
    apply_policy(settings, c, credentials or Credentials(), host)
    apply_culler(settings, c)
    apply_pipelines(settings, c)
    mark_managed_services(settings, c)
    return c


def apply_policy(settings: Settings, c: Config, credentials: Credentials, host: HostFacts) -> Config:
    """The hub's policy on every deployment, one machine's and z2jh's alike (see the docstring)."""
    apply_hub_policy(settings, c)
    apply_auth(settings, c, credentials)
    apply_spawner(settings, c)
    backend_for(settings).apply(settings, c, host)
    return c


def mark_managed_services(settings: Settings, c: Config) -> None:
    """Every service the hub starts carries this hub's instance in its environment: by it the
    next `analysis-hub up` tells the services an unclean stop left running (see `leftovers`)."""
    for service in c.JupyterHub.services:
        if "command" in service:
            service["environment"] = {**service.get("environment", {}), INSTANCE_ENV: settings.instance_name}


def apply_hub_process(settings: Settings, c: Config) -> None:
    """The one-machine hub's own process: where it listens, its state files, the proxy it starts."""
    hub, state = settings.hub, settings.hub_state_dir
    c.JupyterHub.bind_url = f"http://{hub.ip}:{hub.port}{hub.base_url}"
    c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{hub.internal_port}"
    c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
    c.JupyterHub.pid_file = str(state / HUB_PID_FILE)
    c.ConfigurableHTTPProxy.command = list(hub.proxy_command)
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{hub.proxy_api_port}"
    c.ConfigurableHTTPProxy.pid_file = str(state / PROXY_PID_FILE)


def apply_hub_policy(settings: Settings, c: Config) -> None:
    """What the hub does the same wherever it runs; never where it listens or keeps its state."""
    c.JupyterHub.log_level = settings.hub.log_level
    # Users' servers outlive a hub restart (upgrades, config changes).
    c.JupyterHub.cleanup_servers = False
    # Proxy traffic (an open tab's polling) is not activity; see activity.py.
    c.JupyterHub.proxy_class = "analysis_hub.activity.ServerReportedActivityProxy"
    # Our pages (stop reasons) first, JupyterHub's behind them.
    c.JupyterHub.template_paths = [str(PACKAGE_DIR / "templates")]
    # JupyterHub's request log, which also counts the culler's stops (analysis_hub_culls_total).
    # Merged: z2jh's own configuration sets tornado_settings (slow_spawn_timeout) before ours.
    c.JupyterHub.tornado_settings = {**c.JupyterHub.get("tornado_settings", {}), "log_function": request_log}
    # Land in JupyterLab, not the classic tree.
    c.Spawner.default_url = "/lab"
    # A started server may be slow to answer when many start at once: in the
    # 30-user crowd benchmark on 2 cores, JupyterHub's default of 30 s failed
    # 8 spawns that would have succeeded a few seconds later.
    c.Spawner.http_timeout = SERVER_ANSWER_TIMEOUT
    if settings.pipelines.enabled:
        # Servers reach the pipelines service wherever it runs (a hub-managed service on one
        # machine, the chart's Deployment on Kubernetes), so the lab extension publishes.
        c.CatalogSpawnerMixin.server_token_scopes = SERVER_TOKEN_SCOPES
        prefix = pipelines_service_prefix(settings.hub.base_url)
        c.CatalogSpawnerMixin.pipelines_url = backend_for(settings).pipelines_url(settings, prefix)


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
    if not culler.enabled:
        return
    c.JupyterHub.services.append(
        {
            "name": CULLER_SERVICE,
            "command": [
                sys.executable,
                "-m",
                CULLER_MODULE,
                f"--timeout={culler.timeout}",
                f"--cull-every={culler.every}",
            ],
        }
    )
    c.JupyterHub.load_roles.append(
        {"name": CULLER_SERVICE, "scopes": CULLER_SCOPES, "services": [CULLER_SERVICE]}
    )


def pipelines_service_prefix(base_url: str) -> str:
    """The path the proxy routes to the pipelines service (JupyterHub's /services/<name>/)."""
    return f"{base_url.rstrip('/')}/services/{PIPELINES_SERVICE}/"


def pipelines_oauth(base_url: str) -> dict:
    """How the hub registers the pipelines service's browser login, wherever the service runs.

    The service's own side (HubOAuth) reads the same client id and callback from
    $JUPYTERHUB_CLIENT_ID and $JUPYTERHUB_OAUTH_CALLBACK_URL: the hub sets them for a
    managed service; the chart's Deployment sets them for the external one
    (tests/unit/test_chart.py checks that the two agree).
    """
    return {
        "oauth_client_id": f"service-{PIPELINES_SERVICE}",
        "oauth_redirect_uri": pipelines_service_prefix(base_url) + "oauth_callback",
        # Users already logged in to the hub; a consent page per service would only be noise.
        "oauth_no_confirm": True,
        # A browser's login tells the service who the user is, their groups and admin flag.
        "oauth_client_allowed_scopes": ["read:users!user"],
        "display": True,
    }


def add_pipelines_roles(c: Config) -> None:
    """The service's own token gets no scopes; users' tokens (the CLI's) may reach the service."""
    roles = [dict(r) for r in c.JupyterHub.load_roles]
    # The service itself calls nothing on the hub.
    roles.append({"name": PIPELINES_SERVICE, "scopes": [], "services": [PIPELINES_SERVICE]})
    user = next((r for r in roles if r.get("name") == "user"), None)
    if user is None:
        roles.append({"name": "user", "scopes": ["self", PIPELINES_ACCESS]})
    elif PIPELINES_ACCESS not in user.get("scopes", ["self"]):
        # A `user` role given elsewhere (z2jh's hub.loadRoles) keeps its scopes and gains ours.
        user["scopes"] = [*user.get("scopes", ["self"]), PIPELINES_ACCESS]
    c.JupyterHub.load_roles = roles


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
            **pipelines_oauth(settings.hub.base_url),
        }
    )
    add_pipelines_roles(c)


def apply_spawner(settings: Settings, c: Config) -> None:
    """What every backend's spawner shares (`backends.catalog_spawner.CatalogSpawnerMixin`), set once."""
    spawner = c.CatalogSpawnerMixin
    spawner.catalog_dir = str(settings.catalog)
    spawner.images_dir = str(settings.images_dir)
    # Servers report real activity as often as the culler looks at it (every backend,
    # z2jh's included: its culler runs every `cull.every`, which the chart copies here).
    spawner.activity_interval = settings.culler.every
    # The forms name the site's idle timeout for profiles without their own (0: never culled).
    spawner.site_idle_timeout = settings.culler.timeout if settings.culler.enabled else 0
    # One pool of the machine's GPUs for the hub's servers and the pipelines' runs.
    spawner.gpu_state_file = str(settings.gpu_state_file)
    # Server sessions for `analysis-hub usage` (chargeback), beside the hub's database.
    spawner.usage_db = str(settings.hub_state_dir / USAGE_FILE)
    # How long a start may take is the backend's to say: a first environment build
    # (local), an image start (docker), a multi-GB image pull (kubernetes).
    spawner.start_timeout = backend_for(settings).start_timeout(settings)
    # Members of these hub groups get ~/teams/<team> in every server (teams.py).
    spawner.teams = {team: folder.model_dump() for team, folder in settings.teams.items()}
    # Notice a server that died (memory limit, crash) within seconds, not the default 30.
    spawner.poll_interval = 10
    apply_servers(settings, c)


def apply_servers(settings: Settings, c: Config) -> None:
    """Several servers per user, each from its own profile (one home, culled one by one)."""
    servers = settings.servers
    c.JupyterHub.allow_named_servers = True
    # JupyterHub's count: named servers a user may keep, stopped ones included.
    c.JupyterHub.named_server_limit_per_user = servers.max_per_user
    # Ours, where a profile is applied: servers running at once, and those holding GPUs.
    c.CatalogSpawnerMixin.max_servers_per_user = servers.max_per_user
    c.CatalogSpawnerMixin.max_gpu_servers_per_user = servers.max_gpu_per_user
