"""A spawn's user_options on Kubernetes: checked by JupyterHub's hook, applied by KubeSpawner.

JupyterHub (5.3+) runs `Spawner.apply_user_options` before `start()` and warns
"Received unhandled user_options" when no hook is set. `CatalogKubeSpawner`'s hook is the
catalog's check (as on the other backends); KubeSpawner then applies the chosen profile in
`load_user_options`, inside `start()`. `spawn_steps` runs the two in JupyterHub's order
(`User.spawn`, kube_support.load_request). No cluster: the real KubeSpawner with a dummy kubeconfig, as in
test_kubernetes_z2jh.py.
"""

from __future__ import annotations

import logging

import pytest
from analysis_hub.backends.kubernetes.spawner import CatalogKubeSpawner
from analysis_hub.backends.kubernetes.z2jh import configure
from kube_support import HUB, hub_user, load_request, pod_as_dict
from test_kubernetes_z2jh import hub_files as hub_files  # the fixture
from test_kubernetes_z2jh import z2jh_config
from tornado import web

SPAWN_LOG = "analysis-hub-test-spawn"


async def spawn_steps(spawner: CatalogKubeSpawner) -> dict:
    """A spawn up to the pod KubeSpawner builds: the request handled in JupyterHub's order."""
    await load_request(spawner)
    return pod_as_dict(await spawner.get_pod_manifest())


def kube_spawner(hub_files, groups: list[str], options: dict) -> CatalogKubeSpawner:
    _, environ, _ = hub_files
    spawner = CatalogKubeSpawner(
        config=configure(z2jh_config(), environ),
        user=hub_user("ana", groups),
        hub=HUB,
        log=logging.getLogger(SPAWN_LOG),
    )
    spawner.user_options = options
    return spawner


async def test_a_spawn_with_a_profile_logs_no_unhandled_user_options(hub_files, caplog):
    """Spawning pyspark with a size choice and an idle timeout logs no "unhandled user_options"
    warning, and the profile still applies: its image and its size's resources, the idle timeout
    recorded for the culler."""
    values = hub_files[0]
    options = {"profile": "pyspark", "size": "large", "idle_timeout": "2h"}
    spawner = kube_spawner(hub_files, ["data-team"], options)
    with caplog.at_level(logging.DEBUG, logger=SPAWN_LOG):
        pod = await spawn_steps(spawner)
    logged = [r.getMessage() for r in caplog.records if r.name == SPAWN_LOG]
    assert not [m for m in logged if "unhandled user_option" in m.lower()], logged
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.name == SPAWN_LOG]
    [container] = pod["spec"]["containers"]
    assert container["image"] == values["images"]["pyspark"]
    # The chart's pyspark `size: large` choice: 4 CPUs, 16 GiB.
    assert float(container["resources"]["limits"]["cpu"]) == 4
    assert int(container["resources"]["limits"]["memory"]) == 16 * 2**30
    assert spawner.resolved.slug == "pyspark"
    assert spawner.user_options == {**options, "idle_timeout": 7200}


async def test_a_refused_request_is_a_400_before_start(hub_files):
    """A request the catalog refuses (a profile the user's groups can't use, an extra key) is a
    400 from JupyterHub's hook, before `start()` (so it is never a failed start)."""
    spawner = kube_spawner(hub_files, ["data-team"], {"profile": "pytorch"})
    with pytest.raises(web.HTTPError) as refused:
        await spawner._run_apply_user_options(spawner.user_options)
    assert refused.value.status_code == 400 and "Unknown profile 'pytorch'" in refused.value.log_message
    spawner.user_options = {"profile": "pyspark", "image": "evil/image:latest"}
    with pytest.raises(web.HTTPError, match="400"):
        await spawner._run_apply_user_options(spawner.user_options)
