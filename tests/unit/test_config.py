"""apply_settings: settings -> JupyterHub traits, checked on a bare traitlets Config."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from analysis_hub.config import CULLER_SCOPES, PACKAGE_DIR, HostFacts, apply_settings
from analysis_hub.settings import Settings, load_settings
from traitlets.config import Config

ROOT_WITH_CGROUPS = HostFacts(is_root=True, cgroups_writable=True)
USER_WITHOUT_CGROUPS = HostFacts(is_root=False, cgroups_writable=False)


def configure(
    tmp_path: Path, text: str = "", host: HostFacts = USER_WITHOUT_CGROUPS
) -> tuple[Config, object]:
    path = tmp_path / "settings.yaml"
    path.write_text(textwrap.dedent(text))
    settings = load_settings(path, environ={})
    config = Config()
    assert apply_settings(settings, config, host) is config
    return config, settings


SETTINGS = """\
data_dir: data
hub: {ip: 0.0.0.0, port: 8443, base_url: /analysis/, internal_port: 9081, proxy_api_port: 9001,
      log_level: DEBUG}
auth:
  admins: [admin]
  users: [alice, bob, carol]
  groups: {gpu-team: [carol, bob], data-team: [alice]}
"""


def test_hub_urls_and_state_paths(tmp_path):
    """Bind URL, internal URL, database, cookie secret and pid files follow settings and data_dir/hub."""
    c, _ = configure(tmp_path, SETTINGS)
    state = tmp_path / "data" / "hub"
    assert c.JupyterHub.bind_url == "http://0.0.0.0:8443/analysis/"
    assert c.JupyterHub.hub_bind_url == "http://127.0.0.1:9081"
    assert c.JupyterHub.db_url == f"sqlite:///{state / 'jupyterhub.sqlite'}"
    assert c.JupyterHub.db_url.startswith("sqlite:////")  # an absolute path
    assert c.JupyterHub.cookie_secret_file == str(state / "jupyterhub_cookie_secret")
    assert c.JupyterHub.pid_file == str(state / "jupyterhub.pid")
    assert c.JupyterHub.log_level == "DEBUG"
    assert c.Spawner.default_url == "/lab"
    # Under load a server answers slower than JupyterHub's 30 s default; the spawn must not fail.
    assert c.Spawner.http_timeout >= 120
    assert c.JupyterHub.template_paths == [str(PACKAGE_DIR / "templates")]


def test_servers_survive_hub_restart(tmp_path):
    """cleanup_servers is False so users' servers outlive a hub restart."""
    c, _ = configure(tmp_path)
    assert c.JupyterHub.cleanup_servers is False


def test_proxy(tmp_path):
    """The proxy is the activity-filtering CHP class, with its API on loopback at proxy_api_port."""
    c, _ = configure(tmp_path, SETTINGS)
    assert c.JupyterHub.proxy_class == "analysis_hub.activity.ServerReportedActivityProxy"
    assert c.ConfigurableHTTPProxy.api_url == "http://127.0.0.1:9001"
    assert c.ConfigurableHTTPProxy.command == ["configurable-http-proxy"]
    assert c.ConfigurableHTTPProxy.pid_file == str(tmp_path / "data" / "hub" / "proxy.pid")


def test_proxy_class_is_importable():
    """The proxy_class string names a real ConfigurableHTTPProxy subclass."""
    from analysis_hub.activity import ServerReportedActivityProxy
    from jupyterhub.proxy import ConfigurableHTTPProxy

    assert issubclass(ServerReportedActivityProxy, ConfigurableHTTPProxy)


def test_authenticator_and_users(tmp_path):
    """The built-in authenticator reads data_dir/hub/passwords.json; admins and users are allowed."""
    c, _ = configure(tmp_path, SETTINGS)
    assert c.JupyterHub.authenticator_class == "analysis_hub.auth.BuiltinAuthenticator"
    assert c.BuiltinAuthenticator.password_file == str(tmp_path / "data" / "hub" / "passwords.json")
    assert c.Authenticator.admin_users == {"admin"}
    assert c.Authenticator.allowed_users == {"admin", "alice", "bob", "carol"}


def test_load_groups(tmp_path):
    """Groups from settings are loaded into the hub with their members."""
    c, _ = configure(tmp_path, SETTINGS)
    assert c.JupyterHub.load_groups == {
        "data-team": {"users": ["alice"]},
        "gpu-team": {"users": ["bob", "carol"]},
    }


def by_name(items: list[dict], name: str) -> dict:
    [item] = [i for i in items if i["name"] == name]
    return item


def test_pipelines_service_runs_with_no_scopes_and_users_may_reach_it(tmp_path):
    """The pipelines service is hub-managed on loopback with the resolved settings; its own token
    has no scopes; users' tokens and OAuth logins may reach it and say who the user is."""
    c, settings = configure(tmp_path, "pipelines: {port: 9102}\n")
    service = by_name(c.JupyterHub.services, "pipelines")
    assert service["url"] == "http://127.0.0.1:9102"
    assert service["command"] == [sys.executable, "-m", "analysis_hub.pipelines"]
    assert Settings.model_validate_json(service["environment"]["ANALYSIS_HUB_SETTINGS_JSON"]) == settings
    assert service["oauth_client_allowed_scopes"] == ["read:users!user"]
    assert by_name(c.JupyterHub.load_roles, "pipelines") == {
        "name": "pipelines",
        "scopes": [],
        "services": ["pipelines"],
    }
    assert by_name(c.JupyterHub.load_roles, "user")["scopes"] == ["self", "access:services!service=pipelines"]
    assert settings.pipelines.data_dir == settings.data_dir / "pipelines"


def test_culler_service_and_role(tmp_path):
    """The idle culler runs as a service with timeout and sweep interval, holding only the scopes it needs."""
    c, _ = configure(tmp_path)
    service = by_name(c.JupyterHub.services, "idle-culler")
    assert service["command"][:3] == [sys.executable, "-m", "analysis_hub.culling"]
    assert "--timeout=600" in service["command"]
    assert "--cull-every=60" in service["command"]
    role = by_name(c.JupyterHub.load_roles, "idle-culler")
    assert role["scopes"] == ["list:users", "read:users:activity", "read:servers", "delete:servers"]
    assert role["scopes"] == CULLER_SCOPES
    assert role["services"] == ["idle-culler"]
    assert role["name"] == "idle-culler"


def test_culler_follows_settings(tmp_path):
    """Culler timeout and interval come from settings; servers report activity as often as it looks."""
    c, _ = configure(tmp_path, "culler: {timeout: 30, every: 5}\n")
    service = by_name(c.JupyterHub.services, "idle-culler")
    assert "--timeout=30" in service["command"] and "--cull-every=5" in service["command"]
    assert c.CatalogSpawnerMixin.activity_interval == 5
    assert c.CatalogSpawnerMixin.site_idle_timeout == 30  # what the forms name as the site's default


def test_culler_disabled(tmp_path):
    """With the culler (and pipelines) disabled there are no services and no service roles."""
    c, _ = configure(tmp_path, "culler: {enabled: false, every: 45}\npipelines: {enabled: false}\n")
    assert c.JupyterHub.services == []
    assert c.JupyterHub.load_roles == []
    assert c.CatalogSpawnerMixin.activity_interval == 45
    assert c.CatalogSpawnerMixin.site_idle_timeout == 0  # the forms say "never"


def test_spawner_class_and_paths(tmp_path):
    """The local profile spawner gets the catalog, images and environments folders from settings;
    what every backend's spawner shares is set once, on CatalogSpawnerMixin."""
    c, settings = configure(tmp_path, "catalog: cat\nimages_dir: img\nlocal: {start_timeout: 120}\n")
    assert c.JupyterHub.spawner_class == "analysis_hub.backends.local.spawner.LocalProfileSpawner"
    assert c.LocalProfileSpawner.envs_dir == str(tmp_path / ".analysis-hub" / "envs")
    assert c.LocalProfileSpawner.cgroup_parent == settings.instance_name
    spawner = c.CatalogSpawnerMixin
    assert spawner.gpu_state_file == str(tmp_path / ".analysis-hub" / "gpus.json")
    assert spawner.catalog_dir == str(tmp_path / "cat")
    assert spawner.images_dir == str(tmp_path / "img")
    assert spawner.start_timeout == 120
    assert spawner.poll_interval == 10
    assert spawner.activity_interval == settings.culler.every == 60


@pytest.mark.parametrize(
    ("isolation", "is_root", "isolated", "homes"),
    [
        ("auto", True, True, "/home"),
        ("auto", False, False, "DATA/homes"),
        ("unix-users", True, True, "/home"),
        ("unix-users", False, True, "/home"),
        ("none", True, False, "DATA/homes"),
        ("none", False, False, "DATA/homes"),
    ],
)
def test_isolation_and_default_homes(tmp_path, isolation, is_root, isolated, homes):
    """Isolation is on for unix-users, or for auto only as root; homes default to /home vs data_dir/homes."""
    host = HostFacts(is_root=is_root, cgroups_writable=False)
    c, settings = configure(tmp_path, f"local: {{isolation: {isolation}}}\n", host)
    assert c.LocalProfileSpawner.isolate_users is isolated
    assert c.LocalProfileSpawner.homes_dir == homes.replace("DATA", str(settings.data_dir))


def test_configured_homes_dir_wins(tmp_path):
    """An explicit local.homes_dir is used whatever the isolation."""
    c, _ = configure(tmp_path, "local: {homes_dir: /srv/homes}\n", ROOT_WITH_CGROUPS)
    assert c.LocalProfileSpawner.homes_dir == "/srv/homes"


@pytest.mark.parametrize(
    ("cgroups", "writable", "used"),
    [
        ("auto", True, True),
        ("auto", False, False),
        ("required", True, True),
        ("required", False, True),
        ("off", True, False),
        ("off", False, False),
    ],
)
def test_use_cgroups(tmp_path, cgroups, writable, used):
    """use_cgroups follows local.cgroups, with auto meaning 'where the host lets us'."""
    host = HostFacts(is_root=True, cgroups_writable=writable)
    c, _ = configure(tmp_path, f"local: {{cgroups: '{cgroups}'}}\n", host)
    assert c.LocalProfileSpawner.use_cgroups is used


def test_cgroup_parent_is_per_hub(tmp_path):
    """Each hub (data_dir) gets its own stable cgroup parent, so two hubs never touch each other's servers."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, _ = configure(tmp_path / "a", "data_dir: /srv/hub-one\n")
    again, _ = configure(tmp_path / "b", "data_dir: /srv/hub-one\n")
    other, _ = configure(tmp_path / "b", "data_dir: /srv/hub-two\n")
    parent = first.LocalProfileSpawner.cgroup_parent
    assert parent.startswith("analysis-hub-") and "/" not in parent
    assert again.LocalProfileSpawner.cgroup_parent == parent
    assert other.LocalProfileSpawner.cgroup_parent != parent


def test_repo_settings_apply(tmp_path):
    """The checked-in analysis-hub.yaml configures the hub: groups from it, proxy from node_modules."""
    from unit_support import REPO

    settings = load_settings(REPO / "analysis-hub.yaml", environ={})
    c = apply_settings(settings, Config(), USER_WITHOUT_CGROUPS)
    assert c.JupyterHub.load_groups == {"data-team": {"users": ["alice"]}, "gpu-team": {"users": ["bob"]}}
    assert c.ConfigurableHTTPProxy.command[0].startswith(str(REPO / "node_modules"))
    assert c.JupyterHub.bind_url == "http://127.0.0.1:8000/"


def test_every_trait_set_exists(tmp_path):
    """Every trait apply_settings sets is a configurable trait of its class (traitlets ignores typos)."""
    from analysis_hub.activity import ServerReportedActivityProxy
    from analysis_hub.auth import BuiltinAuthenticator
    from analysis_hub.backends.local.spawner import LocalProfileSpawner
    from jupyterhub.app import JupyterHub
    from jupyterhub.auth import Authenticator
    from jupyterhub.spawner import Spawner

    classes = {
        "JupyterHub": JupyterHub,
        "Authenticator": Authenticator,
        "BuiltinAuthenticator": BuiltinAuthenticator,
        "ConfigurableHTTPProxy": ServerReportedActivityProxy,
        "Spawner": Spawner,
        "LocalProfileSpawner": LocalProfileSpawner,
        # Set once for every backend; each backend's spawner carries these traits.
        "CatalogSpawnerMixin": LocalProfileSpawner,
    }
    c, _ = configure(tmp_path, SETTINGS)
    assert set(c) == set(classes)
    for section, cls in classes.items():
        configurable = set(cls.class_trait_names(config=True))
        unknown = set(c[section]) - configurable
        assert not unknown, f"{section} has no configurable traits {sorted(unknown)}"


def test_named_servers_and_their_limits(tmp_path):
    """Named servers are on; servers.max_per_user is JupyterHub's named-server limit and, with
    servers.max_gpu_per_user, the running-server limits every backend's spawner checks."""
    c, _ = configure(tmp_path, "servers: {max_per_user: 4, max_gpu_per_user: 2}\n")
    assert c.JupyterHub.allow_named_servers is True
    assert c.JupyterHub.named_server_limit_per_user == 4
    assert c.CatalogSpawnerMixin.max_servers_per_user == 4
    assert c.CatalogSpawnerMixin.max_gpu_servers_per_user == 2
