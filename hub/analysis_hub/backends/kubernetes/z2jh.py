"""analysis-hub on top of the Zero to JupyterHub chart's own hub configuration.

Contract:
- The z2jh chart's `jupyterhub_config.py` configures the hub pod from its
  values: the proxy in its own pod, the database, the hub's URLs, KubeSpawner's
  basics from `singleuser.*` (home PVCs, the chart's user-pod tolerations,
  the network-tools image), the idle culler from `cull.*`, the cookie secret
  and the auth-state keys (`CryptKeeper.keys`, kept in the chart's Secret).
  It then runs every `*.py` in `/usr/local/etc/jupyterhub/jupyterhub_config.d`;
  our chart mounts a two-line file there that calls `configure(c)`.
- `apply_under_z2jh(settings, c, credentials)` is pure: it sets the hub's
  policy that every deployment shares (`config.apply_policy`: login, the
  catalog-driven `CatalogKubeSpawner`, our pages, JupyterLab, the activity
  proxy, the request log that counts culls, the answer timeout, named servers
  and their limits, the servers' way to the pipelines service) plus the
  pipelines service's OAuth client and roles, and never the hub's URLs,
  database, the proxy's address or the keys, so the chart's values keep their
  meaning; the URL prefix is z2jh's `hub.baseUrl` (`settings_under_z2jh`).
  The culler z2jh configures from `cull.*` keeps its options; only
  its module becomes ours (`analysis_hub.culling`: each server's own idle
  timeout, the same sweep). The
  pipelines service is never started in the hub pod: it is the chart's own
  Deployment, registered by z2jh from `hub.services.pipelines`.
- `configure(c)` is the I/O: the settings file the chart mounts
  (`$ANALYSIS_HUB_SETTINGS`), the OpenID Connect provider's discovery
  document, the client secret (a Kubernetes Secret, as a file or
  `$OAUTH_CLIENT_SECRET`), and with the built-in login the admins' initial
  password from the chart's generated Secret (`set_initial_admin_passwords`,
  so a first login works). Profiles may name the images `kubernetes.images`
  gives a reference (`KubernetesBackend.known_images`).
  No Python lives in the chart's values.
"""

from __future__ import annotations

import os

from traitlets.config import Config

from ...auth import PasswordStore, ensure_initial_passwords
from ...config import (
    CULLER_MODULE,
    PIPELINES_SERVICE,
    add_pipelines_roles,
    apply_policy,
    pipelines_oauth,
)
from ...credentials import CRYPT_KEY_ENV, Credentials, load_credentials
from ...oauth import discover_oidc_endpoints
from ...settings import Settings, SettingsError, load_settings
from .. import HostFacts, backend_for
from .wiring import BACKEND

# Set from the chart's Secret `analysis-hub-initial-admin` (templates/initial-admin.yaml). Not
# ANALYSIS_HUB_*: that prefix is read as settings overrides.
INITIAL_ADMIN_PASSWORD_ENV = "INITIAL_ADMIN_PASSWORD"
# The hub pod: not root, and no cgroups of ours (Kubernetes limits the pods).
Z2JH_HOST = HostFacts(is_root=False, cgroups_writable=False)


def apply_under_z2jh(settings: Settings, c: Config, credentials: Credentials) -> Config:
    if backend_for(settings) is not BACKEND:
        raise SettingsError("backend", ["backend: must be 'kubernetes' under the Zero to JupyterHub chart"])
    oauth = getattr(settings.auth, settings.auth.type, None)
    if oauth is not None and not oauth.callback_url:
        # The default (from hub.ip and hub.port) is the pod's own address, which no browser reaches.
        key = f"auth.{settings.auth.type}.callback_url"
        raise SettingsError(
            key, [f"{key}: required on Kubernetes: https://<the hub's host>/hub/oauth_callback"]
        )
    apply_policy(settings_under_z2jh(settings, c), c, credentials or Credentials(), Z2JH_HOST)
    if settings.pipelines.enabled:
        apply_external_pipelines(c)
    use_per_server_culler(c)
    return c


def settings_under_z2jh(settings: Settings, c: Config) -> Settings:
    """The settings as the hub pod sees them: its URL prefix is z2jh's (`hub.baseUrl`, set as
    `JupyterHub.base_url`), which the chart's settings file does not repeat."""
    base_url = c.JupyterHub.base_url if "base_url" in c.JupyterHub else "/"
    return settings.model_copy(update={"hub": settings.hub.model_copy(update={"base_url": base_url})})


UPSTREAM_CULLER_MODULE = "jupyterhub_idle_culler"


def use_per_server_culler(c: Config) -> None:
    """z2jh's culler service (`python3 -m jupyterhub_idle_culler ...` from `cull.*`) runs our module.

    Same options, same sweep, same role (its `read:servers` shows each server's
    `user_options`, where the chosen idle timeout is); only the decision honours
    each server's timeout. The hub image carries the package.
    """
    if "services" not in c.JupyterHub:
        return
    services = []
    for service in c.JupyterHub.services:
        command = list(service.get("command") or [])
        for i in range(len(command) - 1):
            if command[i] == "-m" and command[i + 1] == UPSTREAM_CULLER_MODULE:
                command[i + 1] = CULLER_MODULE
                service = {**service, "command": command}
        services.append(service)
    c.JupyterHub.services = services


def apply_external_pipelines(c: Config) -> None:
    """The pipelines service as its own Deployment, never a process in the hub pod.

    z2jh registers it from the chart's `jupyterhub.hub.services.pipelines`
    values: the URL of its Kubernetes Service and an API token z2jh generates
    and keeps in its hub Secret (which the service's Deployment reads). Here
    it gets the same OAuth client and roles as the hub-managed service on one
    machine (`config.pipelines_oauth`, `config.add_pipelines_roles`).
    """
    services = [dict(s) for s in (c.JupyterHub.services if "services" in c.JupyterHub else [])]
    entry = next((s for s in services if s.get("name") == PIPELINES_SERVICE), None)
    key = f"jupyterhub.hub.services.{PIPELINES_SERVICE}.url"
    if entry is None or not entry.get("url"):
        raise SettingsError(
            key, [f"{key}: required while pipelines.enabled is true (the chart's values.yaml sets it)"]
        )
    if "command" in entry:
        # A command would make the hub start a second copy inside its own pod.
        key = f"jupyterhub.hub.services.{PIPELINES_SERVICE}.command"
        raise SettingsError(key, [f"{key}: the service runs in its own Deployment; remove it"])
    base_url = c.JupyterHub.base_url if "base_url" in c.JupyterHub else "/"
    entry.update(pipelines_oauth(base_url))
    c.JupyterHub.services = services
    if "load_roles" not in c.JupyterHub:
        c.JupyterHub.load_roles = []
    add_pipelines_roles(c)


def load_z2jh_credentials(settings: Settings, environ: dict[str, str]) -> Credentials:
    """The client secret only: z2jh already keeps the auth-state keys in its own Secret."""
    if settings.auth.type == "builtin":
        return Credentials()
    # A stand-in key stops load_credentials from creating a key file of its own.
    found = load_credentials(settings, {**environ, CRYPT_KEY_ENV: "kept-by-z2jh"})
    return Credentials(client_secret=found.client_secret)


def set_initial_admin_passwords(settings: Settings, environ: dict[str, str]) -> list[str]:
    """A first login on Kubernetes: admins without a password get the one the chart generated
    into a Secret (helm's NOTES say how to read it). Set once; a changed password stays."""
    initial = environ.get(INITIAL_ADMIN_PASSWORD_ENV)
    if not initial:
        return []
    store = PasswordStore(settings.hub_state_dir / "passwords.json")
    return sorted(ensure_initial_passwords(store, list(settings.auth.admins), initial))


def configure(c: Config, environ: dict[str, str] | None = None) -> Config:
    environ = dict(os.environ if environ is None else environ)
    settings = discover_oidc_endpoints(load_settings(environ=environ))
    if settings.auth.type == "builtin":
        # The password hashes live on the hub's volume (z2jh's sqlite PVC).
        settings.hub_state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        set_initial_admin_passwords(settings, environ)
    return apply_under_z2jh(settings, c, load_z2jh_credentials(settings, environ))
