"""Helpers for tests that run the real KubeSpawner and the real Helm engine without a cluster.

No Kubernetes API server can run here. KubeSpawner's constructor reads a
kubeconfig, so `use_dummy_kubeconfig` points it at https://127.0.0.1:6443,
which is never contacted (`get_pod_manifest()` makes no API calls). The chart
is rendered by `helm-python-sdk`, Helm's own engine, with the Zero to
JupyterHub dependency absent: it can't be downloaded here, so only our own
templates render.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import yaml
from unit_support import REPO

K8S_VERSION = "1.32.0"
CHART = REPO / "helm" / "analysis-hub"
EXAMPLES = REPO / "helm" / "examples"

DUMMY_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: none, user: {token: none}}]
contexts: [{name: none, context: {cluster: none, user: none, namespace: analysis-hub}}]
current-context: none
"""


def use_dummy_kubeconfig(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(DUMMY_KUBECONFIG)
    # kubernetes_asyncio reads $KUBECONFIG once, at import; point its default at the dummy.
    from kubernetes_asyncio.config import kube_config

    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))


def hub_user(name: str, groups: list[str]) -> SimpleNamespace:
    """The parts of JupyterHub's User that KubeSpawner reads."""
    return SimpleNamespace(
        name=name,
        id=1,
        url=f"/user/{name}/",
        escaped_name=name,
        groups=[SimpleNamespace(name=g) for g in groups],
        settings={},
        db=None,
    )


HUB = SimpleNamespace(
    public_host="", url="http://hub:8081/hub/", base_url="/hub/", api_url="http://hub:8081/hub/api"
)


async def load_request(spawner) -> None:
    """A spawn's handling of `spawner.user_options`, in JupyterHub's order (`User.spawn`): its
    `apply_user_options` hook (our catalog check), then KubeSpawner's `load_user_options`, which
    its `start()` calls first."""
    await spawner._run_apply_user_options(spawner.user_options)
    await spawner.load_user_options()


def pod_as_dict(pod) -> dict:
    from kubernetes_asyncio.client import ApiClient

    return ApiClient().sanitize_for_serialization(pod)


def merge_values(*layers: dict) -> dict:
    """Helm's layering of -f files: maps merge key by key, anything else is replaced."""
    merged: dict = {}
    for layer in layers:
        _merge_into(merged, layer)
    return merged


def _merge_into(target: dict, layer: dict) -> None:
    for key, value in layer.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge_into(target[key], value)
        else:
            target[key] = value


def example_values(*names: str) -> dict:
    return merge_values(*(yaml.safe_load((EXAMPLES / name).read_text()) for name in names))


def render_chart(values: dict | None = None, namespace: str = "analysis-hub") -> list[dict]:
    """Every manifest our chart's own templates render, parsed, in file order."""
    import helm_python as helm

    with helm.Chart.load(CHART) as chart:
        rendered = chart.render(values=values or {}, name="analysis-hub", namespace=namespace)
    manifests = []
    for path in sorted(rendered):
        if path.endswith(".yaml"):
            manifests.extend(doc for doc in yaml.safe_load_all(rendered[path]) if doc)
    return manifests


def find(manifests: list[dict], kind: str, name: str) -> dict:
    matches = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def offered_profiles(spawner) -> list[str]:
    """The profiles the spawn form offers this spawner's user (its radio buttons' values)."""
    import re

    return re.findall(r'<input type="radio" name="profile" value="([^"]+)"', spawner.options_form(spawner))
