"""Named servers under the Zero to JupyterHub chart: one home PVC per user, the limits and idle
timeouts as on the other backends, and z2jh's culler running our per-server policy.

No cluster runs here (a STAND-IN: pods are built by the real KubeSpawner with a dummy kubeconfig
and validated against the Kubernetes schemas, as in test_kubernetes_z2jh.py).
"""

from __future__ import annotations

from types import SimpleNamespace

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from analysis_hub.backends.kubernetes.spawner import CatalogKubeSpawner
from analysis_hub.backends.kubernetes.z2jh import configure
from analysis_hub.culling import server_timeout
from kube_support import HUB, K8S_VERSION, find, hub_user, load_request, pod_as_dict, render_chart
from test_kubernetes_z2jh import chart_defaults, z2jh_config
from test_kubernetes_z2jh import hub_files as hub_files  # the fixture
from tornado import web

Z2JH_CULLER = [
    "python3",
    "-m",
    "jupyterhub_idle_culler",
    "--url=http://localhost:8081/hub/api",
    "--timeout=600",
]


def chart_config():
    """z2jh's configuration with its culler service and the PVC name template from our values."""
    c = z2jh_config()
    c.JupyterHub.services = [
        *c.JupyterHub.services,
        {"name": "jupyterhub-idle-culler", "command": Z2JH_CULLER},
    ]
    storage = chart_defaults()["jupyterhub"]["singleuser"]["storage"]
    c.KubeSpawner.pvc_name_template = storage["dynamic"]["pvcNameTemplate"]
    return c


def spawner(c, server: str, options: dict, siblings: dict | None = None) -> CatalogKubeSpawner:
    user = hub_user("ana", ["data-team", "ml-team"])
    user.spawners = siblings or {}
    # JupyterHub's Spawner takes its name from its database row.
    orm_spawner = SimpleNamespace(name=server, server=None)
    made = CatalogKubeSpawner(config=c, user=user, hub=HUB, orm_spawner=orm_spawner)
    made.user_options = options
    return made


async def pod(made: CatalogKubeSpawner) -> dict:
    await load_request(made)
    manifest = pod_as_dict(await made.get_pod_manifest())
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    return manifest


def test_under_the_chart_named_servers_are_on_and_the_culler_is_ours(hub_files):
    """Named servers with servers.max_per_user as JupyterHub's limit; z2jh's culler command keeps
    its options and runs analysis_hub.culling (each server's own idle timeout)."""
    _, environ, _ = hub_files
    c = configure(chart_config(), environ)
    assert c.JupyterHub.allow_named_servers is True
    assert c.JupyterHub.named_server_limit_per_user == 3
    catalog = c.CatalogSpawnerMixin
    assert (catalog.max_servers_per_user, catalog.max_gpu_servers_per_user) == (3, 1)
    culler = next(s for s in c.JupyterHub.services if s["name"] == "jupyterhub-idle-culler")
    assert culler["command"] == ["python3", "-m", "analysis_hub.culling", *Z2JH_CULLER[3:]]


async def test_a_users_servers_share_one_home_pvc(hub_files):
    """ana's default server and her named server 'spark' are different pods on the same home PVC
    (the one her default server always had)."""
    _, environ, _ = hub_files
    c = configure(chart_config(), environ)
    default = await pod(spawner(c, "", {"profile": "tensorflow"}))
    named = await pod(spawner(c, "spark", {"profile": "pyspark"}))
    assert default["metadata"]["name"] != named["metadata"]["name"]

    def claims(p):
        return [
            v["persistentVolumeClaim"]["claimName"]
            for v in p["spec"]["volumes"]
            if "persistentVolumeClaim" in v
        ]

    assert claims(default) == claims(named) == ["claim-ana"]


async def test_idle_timeout_is_offered_validated_and_recorded_for_the_culler(hub_files):
    """The form (the catalog's, as on every backend) offers pyspark's timeouts with its 30-minute
    default preselected; a request outside the range is a 400 naming it; one inside is recorded in
    user_options (seconds) and the pod still builds; without a request, pyspark's default is
    recorded and the culler uses it."""
    _, environ, _ = hub_files
    c = configure(chart_config(), environ)
    made = spawner(c, "spark", {"profile": "pyspark", "idle_timeout": "8h"})
    form = made.options_form(made)
    assert '<option value="1800" selected' in form and '<option value="14400"' in form
    assert '<option value="28800"' not in form
    with pytest.raises(web.HTTPError) as refused:
        await load_request(made)
    assert refused.value.status_code == 400
    assert "is not offered for profile 'pyspark': pick one from 10m to 4h" in refused.value.log_message
    made = spawner(c, "spark", {"profile": "pyspark", "idle_timeout": "2h"})
    await pod(made)
    assert made.user_options == {"profile": "pyspark", "idle_timeout": 7200}
    made = spawner(c, "spark", {"profile": "pyspark"})
    await pod(made)
    assert made.user_options == {"profile": "pyspark", "idle_timeout": 1800}
    assert server_timeout({"user_options": made.user_options}, 600) == 1800


async def test_a_second_gpu_server_is_refused_as_on_the_other_backends(hub_files):
    """With a pytorch server running, another GPU server gets a 400 naming the limit and that
    server; a CPU server (pytorch's CPU option) starts."""
    _, environ, _ = hub_files
    c = configure(chart_config(), environ)
    running = {"train": SimpleNamespace(active=True, user_options={"profile": "pytorch"}, server_gpus=1)}
    made = spawner(c, "train2", {"profile": "pytorch"}, running)
    with pytest.raises(web.HTTPError) as refused:
        await load_request(made)
    assert refused.value.status_code == 400
    assert "servers.max_gpu_per_user = 1" in refused.value.log_message
    assert "'train' (pytorch, 1 GPU)" in refused.value.log_message
    await pod(spawner(c, "prep", {"profile": "pytorch", "accelerator": "cpu"}, running))


def test_the_charts_servers_values_reach_the_hubs_settings_and_bad_ones_are_refused():
    """`settings.servers` in the chart's values lands in the settings file the hub mounts; a
    value out of range or a misspelt key is refused by Helm, naming where it is."""
    manifests = render_chart({"settings": {"servers": {"max_per_user": 5, "max_gpu_per_user": 0}}})
    settings = yaml.safe_load(find(manifests, "ConfigMap", "analysis-hub-settings")["data"]["settings.yaml"])
    assert settings["servers"] == {"max_per_user": 5, "max_gpu_per_user": 0}
    defaults = render_chart()
    settings = yaml.safe_load(find(defaults, "ConfigMap", "analysis-hub-settings")["data"]["settings.yaml"])
    assert settings["servers"] == {"max_per_user": 3, "max_gpu_per_user": 1}
    with pytest.raises(
        helm.HelmValuesError, match="at '/settings/servers/max_per_user': minimum: got 0, want 1"
    ):
        render_chart({"settings": {"servers": {"max_per_user": 0}}})
    with pytest.raises(helm.HelmValuesError, match="additional properties 'max_servers' not allowed"):
        render_chart({"settings": {"servers": {"max_servers": 2}}})


async def test_the_form_offers_gpu_profiles_the_cluster_schedules(hub_files):
    """No GPU is counted on the hub: the form never says a GPU profile "needs a GPU; this machine
    has none" (the cluster's scheduler places it, or its pod says why it waits)."""
    _, environ, _ = hub_files
    made = spawner(configure(chart_config(), environ), "", {})
    form = made.options_form(made)
    assert "pytorch" in form and "this machine has none" not in form
    await pod(spawner(configure(chart_config(), environ), "gpu", {"profile": "pytorch"}))
