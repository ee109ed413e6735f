"""One hub policy for both entry points: the one-machine `up` and z2jh's hook.

`config.apply_policy` is what every deployment's hub needs (the activity proxy, our pages,
the request log that counts idle culls, JupyterLab, the server answer timeout, the login,
the catalog spawner, the servers' way to the pipelines service). These tests compare, trait
by trait, what it sets with what each entry point ends with, so a trait added to the policy
and missed by one path (as the cull counter and the answer timeout once were under z2jh)
fails here. No cluster: z2jh's own configuration is the stand-in `z2jh_config`.
"""

from __future__ import annotations

from analysis_hub.backends.kubernetes.z2jh import (
    Z2JH_HOST,
    apply_under_z2jh,
    configure,
    load_z2jh_credentials,
    settings_under_z2jh,
)
from analysis_hub.config import (
    PIPELINES_ACCESS,
    SERVER_ANSWER_TIMEOUT,
    HostFacts,
    apply_policy,
    apply_settings,
)
from analysis_hub.credentials import Credentials
from analysis_hub.hub_metrics import request_log
from analysis_hub.oauth import discover_oidc_endpoints
from analysis_hub.settings import Settings, load_settings
from test_kubernetes_z2jh import hub_files as hub_files  # the fixture
from test_kubernetes_z2jh import z2jh_config
from traitlets.config import Config

# What z2jh 4.4.0's jupyterhub_config.py puts in tornado_settings before our hook runs.
Z2JH_TORNADO = {"slow_spawn_timeout": 0}
# Traits whose value is a dict that another layer (z2jh, hub.config) may also fill: ours must
# be in it, beside theirs.
MERGED = {("JupyterHub", "tornado_settings")}


def traits_set(c: Config) -> dict[tuple[str, str], object]:
    """Every (section, trait) a Config holds, with its value."""
    return {
        (section, name): value
        for section, traits in c.items()
        if isinstance(traits, Config)
        for name, value in traits.items()
    }


def assert_policy_holds(policy: Config, hub: Config) -> None:
    """Each trait the policy sets has the policy's value in `hub` (merged dicts: a superset)."""
    ours, theirs = traits_set(policy), traits_set(hub)
    assert ours, "the policy sets nothing"
    for key, value in ours.items():
        assert key in theirs, f"{'.'.join(key)} is not set"
        if key in MERGED:
            assert theirs[key] == {**theirs[key], **value}, f"{'.'.join(key)} lost the policy's entries"
        else:
            assert theirs[key] == value, f"{'.'.join(key)}: {theirs[key]!r}, the policy says {value!r}"


def assert_promised_traits(c: Config) -> None:
    """The hub traits issue 24 named, explicitly: dropping one from the policy fails too."""
    assert c.JupyterHub.proxy_class == "analysis_hub.activity.ServerReportedActivityProxy"
    assert c.JupyterHub.tornado_settings["log_function"] is request_log
    assert c.Spawner.http_timeout == SERVER_ANSWER_TIMEOUT
    assert c.Spawner.default_url == "/lab"
    assert c.JupyterHub.cleanup_servers is False
    assert c.JupyterHub.template_paths and c.JupyterHub.template_paths[0].endswith("templates")
    assert PIPELINES_ACCESS in c.CatalogSpawnerMixin.server_token_scopes


def test_under_the_chart_the_hub_gets_every_trait_of_the_shared_policy(hub_files):
    """After z2jh's configuration and our hook, every trait `apply_policy` sets for the chart's
    settings has the policy's value: the cull-counting request log and the answer timeout
    included; z2jh's own tornado settings are kept beside our request log; servers reach the
    pipelines service through z2jh's proxy Service."""
    _, environ, _ = hub_files
    z2jh = z2jh_config()
    z2jh.JupyterHub.tornado_settings = dict(Z2JH_TORNADO)
    hub = configure(z2jh, environ)

    settings = settings_under_z2jh(discover_oidc_endpoints(load_settings(environ=environ)), z2jh_config())
    policy = apply_policy(settings, Config(), load_z2jh_credentials(settings, environ), Z2JH_HOST)
    assert_policy_holds(policy, hub)
    assert_promised_traits(hub)
    assert hub.JupyterHub.tornado_settings["slow_spawn_timeout"] == 0
    assert hub.CatalogSpawnerMixin.pipelines_url == "http://proxy-public/services/pipelines/"


def test_under_the_chart_servers_find_the_pipelines_service_under_z2jhs_base_url():
    """z2jh's `hub.baseUrl` (JupyterHub.base_url), not the settings' default, is the prefix the
    servers' pipelines URL carries."""
    z2jh = z2jh_config()
    z2jh.JupyterHub.base_url = "/analysis/"
    hub = apply_under_z2jh(Settings.model_validate({"backend": "kubernetes"}), z2jh, Credentials())
    assert hub.CatalogSpawnerMixin.pipelines_url == "http://proxy-public/analysis/services/pipelines/"


def test_on_one_machine_the_hub_gets_every_trait_of_the_same_policy(tmp_path):
    """`apply_settings` (the one-machine `up`) ends with the same policy traits, beside its
    process facts (bind URLs, database, pid files)."""
    settings = Settings.model_validate({"data_dir": str(tmp_path), "hub": {"log_level": "DEBUG"}})
    host = HostFacts(is_root=False, cgroups_writable=False)
    hub = apply_settings(settings, Config(), host, Credentials())
    assert_policy_holds(apply_policy(settings, Config(), Credentials(), host), hub)
    assert_promised_traits(hub)
    assert hub.JupyterHub.log_level == "DEBUG"
    assert hub.JupyterHub.db_url.startswith("sqlite:///")
