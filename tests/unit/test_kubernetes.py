"""The kubernetes backend: real KubeSpawner pod manifests for every profile and choice, validated.

No Kubernetes API server can run here. KubeSpawner is the real one; its
constructor reads a kubeconfig, so a dummy one points at https://127.0.0.1:6443
(never contacted: `get_pod_manifest()` makes no API calls). The hub's user is
a stand-in object with a name and groups. Each manifest is checked field by field and validated
with kubernetes-validate against the Kubernetes 1.32 schemas. A pipeline
step's Job is built from the same pod settings (test_kubernetes_jobs.py).
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import kubernetes_validate
import pytest
from analysis_hub.backends.kubernetes.spawner import CatalogKubeSpawner
from analysis_hub.backends.kubernetes.translate import CHART_USER_TOLERATIONS
from analysis_hub.config import HostFacts, apply_settings
from analysis_hub.settings import load_settings
from kube_support import load_request, offered_profiles
from traitlets.config import Config
from unit_support import IMAGES, PROFILES

K8S = "1.32.0"
IMAGE_REFS = {
    name: f"registry.example.com/analysis-hub/{name}:abc123" for name in ("pyspark", "pytorch", "tensorflow")
}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


DUMMY_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: none, user: {token: none}}]
contexts: [{name: none, context: {cluster: none, user: none, namespace: analysis-hub}}]
current-context: none
"""


@pytest.fixture(autouse=True)
def kubeconfig(tmp_path, monkeypatch):
    path = tmp_path / "kubeconfig"
    path.write_text(DUMMY_KUBECONFIG)
    # kubernetes_asyncio reads $KUBECONFIG once, at import; point its default at the dummy.
    from kubernetes_asyncio.config import kube_config

    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))


def hub_config(tmp_path) -> Config:
    path = tmp_path / "settings.yaml"
    settings = {
        "backend": "kubernetes",
        "catalog": str(PROFILES),
        "images_dir": str(IMAGES),
        "kubernetes": {"images": IMAGE_REFS, "hadoop_configmap": "hadoop-conf"},
    }
    path.write_text(json.dumps(settings))
    return apply_settings(
        load_settings(path, environ={}), Config(), HostFacts(is_root=False, cgroups_writable=False)
    )


def spawner_for(tmp_path, groups: list[str], user_options: dict) -> CatalogKubeSpawner:
    user = SimpleNamespace(
        name="alice",
        id=1,
        url="/user/alice/",
        escaped_name="alice",
        groups=[SimpleNamespace(name=g) for g in groups],
        settings={},
        db=None,
    )
    hub = SimpleNamespace(
        public_host="", url="http://hub:8081/hub/", base_url="/hub/", api_url="http://hub:8081/hub/api"
    )
    spawner = CatalogKubeSpawner(config=hub_config(tmp_path), user=user, hub=hub)
    spawner.user_options = user_options
    return spawner


async def manifest(tmp_path, groups, user_options) -> dict:
    spawner = spawner_for(tmp_path, groups, user_options)
    await load_request(spawner)
    pod = await spawner.get_pod_manifest()
    return (
        spawner.api.api_client.sanitize_for_serialization(pod) if hasattr(spawner, "api") else _serialise(pod)
    )


def _serialise(pod) -> dict:
    from kubernetes_asyncio.client import ApiClient

    return ApiClient().sanitize_for_serialization(pod)


CASES = [
    # (user_options, image, cpu request/limit, memory request/limit, gpus, node selector, extra tolerations)
    ({"profile": "pyspark"}, "pyspark", ("1", "2"), (2 * 2**30, 4 * 2**30), 0, {}, []),
    ({"profile": "pyspark", "size": "large"}, "pyspark", ("2", "4"), (8 * 2**30, 16 * 2**30), 0, {}, []),
    (
        {"profile": "pytorch"},
        "pytorch",
        ("2", "4"),
        (8 * 2**30, 16 * 2**30),
        1,
        {"analysis-hub/node-pool": "gpu"},
        [GPU_TOLERATION],
    ),
    (
        {"profile": "pytorch", "accelerator": "gpu2"},
        "pytorch",
        ("4", "8"),
        (16 * 2**30, 32 * 2**30),
        2,
        {"analysis-hub/node-pool": "gpu"},
        [GPU_TOLERATION],
    ),
    ({"profile": "pytorch", "accelerator": "cpu"}, "pytorch", ("1", "2"), (2 * 2**30, 4 * 2**30), 0, {}, []),
    ({"profile": "tensorflow"}, "tensorflow", ("1", "2"), (2 * 2**30, 6 * 2**30), 0, {}, []),
]


@pytest.mark.parametrize("options, image, cpu, memory, gpus, selector, tolerations", CASES)
async def test_pod_manifest_for_every_profile_and_choice(
    tmp_path, options, image, cpu, memory, gpus, selector, tolerations
):
    """Image, requests and limits, GPU limit, node selector, tolerations (the chart's too), env,
    volumes and the security context, for each profile and option; valid for Kubernetes 1.32."""
    pod = await manifest(tmp_path, ["data-team", "gpu-team"], options)
    [container] = pod["spec"]["containers"]
    assert container["image"] == IMAGE_REFS[image]
    resources = container["resources"]
    assert (float(resources["requests"]["cpu"]), float(resources["limits"]["cpu"])) == tuple(map(float, cpu))
    assert (int(resources["requests"]["memory"]), int(resources["limits"]["memory"])) == memory
    assert int(resources["limits"].get("nvidia.com/gpu", 0)) == gpus
    assert pod["spec"].get("nodeSelector", {}) == selector
    assert pod["spec"]["tolerations"] == [*CHART_USER_TOLERATIONS, *tolerations]
    env = {e["name"]: e.get("value") for e in container["env"]}
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    assert ("/dev/shm" in mounts) == bool(gpus), "a memory-backed /dev/shm exactly for GPU pods"
    if image == "pyspark":
        assert env["HADOOP_CONF_DIR"] == "/etc/hadoop/conf" and mounts["/etc/hadoop/conf"] == "hadoop-conf"
        volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "hadoop-conf")
        assert volume["configMap"]["name"] == "hadoop-conf"
    else:
        assert "HADOOP_CONF_DIR" not in env
    if image == "pytorch" and gpus:
        assert env["NVIDIA_DRIVER_CAPABILITIES"] == "compute,utility"
    security = container["securityContext"]
    assert security["runAsUser"] == 1000 and security["runAsNonRoot"] is True
    assert security["allowPrivilegeEscalation"] is False and security["capabilities"] == {"drop": ["ALL"]}
    assert pod["spec"]["automountServiceAccountToken"] is False
    kubernetes_validate.validate(pod, K8S, strict=True)


async def test_a_profile_hidden_from_the_users_groups_cant_be_requested(tmp_path):
    """With pytorch restricted to gpu-team, a data-team user asking for it through user_options
    gets 400 (the same message as for an unknown profile) and no pod is built."""
    from tornado import web

    restricted = tmp_path / "profiles"
    restricted.mkdir()
    for path in PROFILES.glob("*.yaml"):
        text = path.read_text()
        if path.stem == "pytorch":
            text = text.replace("allowed_groups: []", "allowed_groups: [gpu-team]")
        (restricted / path.name).write_text(text)
    spawner = spawner_for(tmp_path, ["data-team"], {"profile": "pytorch"})
    spawner.catalog_dir = str(restricted)
    assert offered_profiles(spawner) == ["pyspark", "tensorflow"]
    with pytest.raises(web.HTTPError) as refused:
        await load_request(spawner)
    assert refused.value.status_code == 400 and "Unknown profile 'pytorch'" in refused.value.log_message
    spawner.user_options = {"profile": "pyspark", "image": "evil/image:latest"}
    with pytest.raises(web.HTTPError, match="400"):
        await load_request(spawner)
    assert spawner.image != "evil/image:latest"


async def test_a_server_restarted_with_another_profile_keeps_nothing_of_the_last(tmp_path):
    """One spawner (JupyterHub keeps it across restarts) starts pyspark, then pytorch with two
    GPUs, then tensorflow: each pod has its own profile's image, limits, GPUs, node selector,
    tolerations, volumes and env, and nothing the earlier profiles set."""
    spawner = spawner_for(tmp_path, ["data-team", "gpu-team"], {"profile": "pyspark"})
    pods = []
    for options in (
        {"profile": "pyspark"},
        {"profile": "pytorch", "accelerator": "gpu2"},
        {"profile": "tensorflow"},
    ):
        spawner.user_options, spawner.resolved = options, None
        await load_request(spawner)
        pods.append(_serialise(await spawner.get_pod_manifest()))
    gpu_pod, tensorflow = pods[1], pods[2]
    assert int(gpu_pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]) == 2
    [container] = tensorflow["spec"]["containers"]
    assert container["image"] == IMAGE_REFS["tensorflow"]
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    assert tensorflow["spec"].get("nodeSelector", {}) == {}
    assert tensorflow["spec"]["tolerations"] == list(CHART_USER_TOLERATIONS)
    env = {e["name"] for e in container["env"]}
    assert "HADOOP_CONF_DIR" not in env and "NVIDIA_DRIVER_CAPABILITIES" not in env
    mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
    assert "/dev/shm" not in mounts and "/etc/hadoop/conf" not in mounts
