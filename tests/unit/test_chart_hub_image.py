"""The pipelines Deployment runs the hub image and pulls it exactly as z2jh pulls it for the hub.

Issue 24, bug 3: with the registry's pull secret and `pullPolicy` given for the hub image
(`jupyterhub.hub.image.*`, or the global `jupyterhub.imagePullSecrets` / `imagePullSecret`),
the hub started and the pipelines pod stayed in ErrImagePull. Here the umbrella chart is
rendered with the real Zero to JupyterHub 4.4.0 dependency (../shared/charts, where
`helm dependency build` would have fetched it; skipped where it is absent) and the pipelines
pod's `imagePullSecrets` and `imagePullPolicy` are compared with z2jh's own hub pod for each
way of giving them; a render without the dependency (as the other chart tests do) checks the
expected values outright.
"""

from __future__ import annotations

import shutil

import pytest
import yaml
from kube_support import CHART, find, merge_values, render_chart
from unit_support import REPO

Z2JH_PACKAGE = REPO.parent / "shared" / "charts" / "jupyterhub-4.4.0.tgz"
RELEASE = "analysis-hub"
PIPELINES = "analysis-hub-pipelines"
# What z2jh's `imagePullSecret.create` needs to render its Secret.
REGISTRY = {"registry": "registry.example.com", "username": "robot", "password": "not-a-secret"}

WAYS = {
    "nothing given": {},
    "the hub image's own": {
        "hub": {"image": {"pullPolicy": "IfNotPresent", "pullSecrets": ["hub-registry"]}}
    },
    "global ones, names and maps, repeated": {
        "imagePullSecrets": ["org-registry", {"name": "mirror"}],
        "hub": {"image": {"pullPolicy": "Always", "pullSecrets": ["hub-registry", "org-registry"]}},
    },
    "the Secret z2jh creates": {"imagePullSecret": {"create": True, **REGISTRY}},
    "the Secret z2jh creates, not injected": {
        "imagePullSecret": {"create": True, "automaticReferenceInjection": False, **REGISTRY},
        "imagePullSecrets": ["org-registry"],
    },
    "the Secret z2jh creates, under a fullnameOverride": {
        "fullnameOverride": "ah",
        "imagePullSecret": {"create": True, **REGISTRY},
    },
    # null: z2jh names its resources after the release and the chart.
    "the Secret z2jh creates, fullnameOverride null": {
        "fullnameOverride": None,
        "imagePullSecret": {"create": True, **REGISTRY},
    },
}


def pulling(pod_spec: dict) -> tuple:
    """How a pod pulls its first container's image: (imagePullSecrets, imagePullPolicy)."""
    return pod_spec.get("imagePullSecrets"), pod_spec["containers"][0].get("imagePullPolicy")


def pod_spec(manifests: list[dict], name: str) -> dict:
    return find(manifests, "Deployment", name)["spec"]["template"]["spec"]


def z2jh_hub_pod_spec(manifests: list[dict]) -> dict:
    """z2jh's hub Deployment, whatever its name prefix (found by z2jh's component label)."""
    [hub] = [
        m
        for m in manifests
        if m["kind"] == "Deployment" and m["metadata"]["labels"].get("component") == "hub"
    ]
    return hub["spec"]["template"]["spec"]


@pytest.fixture(scope="module")
def with_z2jh(tmp_path_factory):
    """The umbrella chart with its real dependency, loaded once: a function of z2jh values."""
    if not Z2JH_PACKAGE.exists():
        pytest.skip(f"no {Z2JH_PACKAGE} (the z2jh chart that Chart.lock pins) on this machine")
    import helm_python as helm

    copy = tmp_path_factory.mktemp("chart") / "analysis-hub"
    shutil.copytree(CHART, copy, ignore=shutil.ignore_patterns("charts"))
    (copy / "charts").mkdir()
    shutil.copy2(Z2JH_PACKAGE, copy / "charts" / Z2JH_PACKAGE.name)
    with helm.Chart.load(str(copy)) as chart:

        def render(z2jh_values: dict) -> list[dict]:
            rendered = chart.render(values={"jupyterhub": z2jh_values}, name=RELEASE, namespace=RELEASE)
            return [
                doc
                for path in sorted(rendered)
                if path.endswith(".yaml")
                for doc in yaml.safe_load_all(rendered[path])
                if doc
            ]

        yield render


@pytest.mark.parametrize("way", WAYS)
def test_the_pipelines_pod_pulls_the_hub_image_as_z2jhs_hub_pod_does(with_z2jh, way):
    """For each way of giving pull secrets and the pull policy, the pipelines pod's equal the
    hub pod's that z2jh renders (the same image from the same registry)."""
    manifests = with_z2jh(WAYS[way])
    hub, pipelines = z2jh_hub_pod_spec(manifests), pod_spec(manifests, PIPELINES)
    assert pipelines["containers"][0]["image"] == hub["containers"][0]["image"]
    assert pulling(pipelines) == pulling(hub)


def test_without_the_dependency_the_pipelines_pod_pulls_with_the_hub_images_values():
    """Rendered alone (z2jh's defaults absent): nothing given, nothing set; the hub image's
    policy and secrets, the global secrets after them without repeats, and the Secret z2jh
    creates (named after z2jh's prefix) when it is injected."""
    defaults = pulling(pod_spec(render_chart(), PIPELINES))
    assert defaults == (None, None)
    z2jh = {
        "fullnameOverride": "",
        "imagePullSecrets": ["org-registry", {"name": "mirror"}],
        "imagePullSecret": {"create": True},
        "hub": {"image": {"pullPolicy": "IfNotPresent", "pullSecrets": ["hub-registry", "org-registry"]}},
    }
    manifests = render_chart(
        merge_values(yaml.safe_load((CHART / "values.yaml").read_text()), {"jupyterhub": z2jh})
    )
    secrets = ["hub-registry", "org-registry", "mirror", "image-pull-secret"]
    assert pulling(pod_spec(manifests, PIPELINES)) == ([{"name": s} for s in secrets], "IfNotPresent")
