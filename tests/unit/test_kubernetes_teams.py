"""Team folders under the chart: one ReadWriteMany claim per team, mounted only in members' pods.

The chart's templates are rendered by the real Helm engine with team
folders in the values; the hub is configured from the settings file the
chart writes, as in the hub pod; the real KubeSpawner builds each user's
pod (no API server: a dummy kubeconfig), and each pod is validated against
the Kubernetes schemas. Members carry the team's claim whatever their
profile; non-members carry none.
"""

from __future__ import annotations

import helm_python as helm
import pytest
from analysis_hub.backends.kubernetes.z2jh import configure
from kube_support import example_values, find, merge_values, render_chart, use_dummy_kubeconfig
from test_kubernetes_z2jh import OIDC_ENDPOINTS, pod_for, z2jh_config
from unit_support import REPO

TEAMS = {
    "folders": {"data-team": {}, "gpu-team": {"readOnly": True}},
    "storageClassName": "nfs-client",
    "accessModes": ["ReadWriteMany"],
    "size": "20Gi",
}


@pytest.fixture
def team_environ(tmp_path, monkeypatch):
    use_dummy_kubeconfig(tmp_path, monkeypatch)
    values = merge_values(
        example_values("common.yaml", "production.yaml"),
        {"settings": {"auth": {"oidc": OIDC_ENDPOINTS}}, "teams": TEAMS},
    )
    manifests = render_chart(values)
    (tmp_path / "settings").mkdir()
    settings_file = tmp_path / "settings" / "settings.yaml"
    settings_file.write_text(find(manifests, "ConfigMap", "analysis-hub-settings")["data"]["settings.yaml"])
    catalog_dir = tmp_path / "profiles"
    catalog_dir.mkdir()
    for name, text in find(manifests, "ConfigMap", "analysis-hub-catalog")["data"].items():
        (catalog_dir / name).write_text(text)
    environ = {
        "ANALYSIS_HUB_SETTINGS": str(settings_file),
        "ANALYSIS_HUB_CATALOG": str(catalog_dir),
        "ANALYSIS_HUB_IMAGES_DIR": str(REPO / "images"),
        "ANALYSIS_HUB_DATA_DIR": str(tmp_path / "srv"),
        "OAUTH_CLIENT_SECRET": "from-the-kubernetes-secret",
    }
    return manifests, environ


def team_mounts(pod: dict) -> dict:
    claims = {
        v["name"]: v["persistentVolumeClaim"]
        for v in pod["spec"]["volumes"]
        if v.get("persistentVolumeClaim", {}).get("claimName", "").startswith("analysis-hub-team-")
    }
    mounts = pod["spec"]["containers"][0]["volumeMounts"]
    return {
        m["mountPath"]: {**claims[m["name"]], "mount_read_only": m.get("readOnly", False)}
        for m in mounts
        if m["name"] in claims
    }


def test_the_chart_creates_one_read_write_many_claim_per_team_kept_on_uninstall(team_environ):
    manifests, _ = team_environ
    claims = {
        m["metadata"]["name"]: m
        for m in manifests
        if m["kind"] == "PersistentVolumeClaim" and "analysis-hub/team" in m["metadata"]["labels"]
    }
    assert sorted(claims) == ["analysis-hub-team-data-team", "analysis-hub-team-gpu-team"]
    claim = claims["analysis-hub-team-data-team"]
    assert claim["spec"] == {
        "accessModes": ["ReadWriteMany"],
        "storageClassName": "nfs-client",
        "resources": {"requests": {"storage": "20Gi"}},
    }
    assert claim["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}


async def test_members_pods_carry_their_teams_claims_and_non_members_none(team_environ):
    """ana in data-team gets its claim read-write at ~/teams/data-team, with any profile; in gpu-team
    its claim read-only; in no team, no team claim at all. Every pod passes the 1.32 schemas."""
    _, environ = team_environ
    data = await pod_for(configure(z2jh_config(), environ), ["data-team"], {"profile": "pyspark"})
    assert team_mounts(data) == {
        "/home/jovyan/teams/data-team": {"claimName": "analysis-hub-team-data-team", "mount_read_only": False}
    }
    both = await pod_for(
        configure(z2jh_config(), environ),
        ["data-team", "gpu-team", "ml-team"],
        {"profile": "pytorch", "accelerator": "cpu"},
    )
    assert team_mounts(both) == {
        "/home/jovyan/teams/data-team": {
            "claimName": "analysis-hub-team-data-team",
            "mount_read_only": False,
        },
        "/home/jovyan/teams/gpu-team": {
            "claimName": "analysis-hub-team-gpu-team",
            "readOnly": True,
            "mount_read_only": True,
        },
    }
    outsider = await pod_for(configure(z2jh_config(), environ), ["ml-team"], {"profile": "tensorflow"})
    assert team_mounts(outsider) == {}


async def test_the_pods_kernel_is_named_after_its_image(team_environ):
    """The server's command names the kernel (kernels.container_command); the image is not rebuilt."""
    _, environ = team_environ
    pod = await pod_for(configure(z2jh_config(), environ), ["data-team"], {"profile": "pyspark"})
    [container] = pod["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["ANALYSIS_HUB_KERNEL_DISPLAY_NAME"] == "PySpark (Spark 4, Java 17)"
    assert container["args"][:2] == ["python", "-c"]
    assert container["args"][3:5] == ["/tmp/analysis-hub-jupyter", "jupyterhub-singleuser"]


@pytest.mark.parametrize(
    ("teams", "message"),
    [
        ({**TEAMS, "accessModes": ["ReadWriteOnce"]}, "ReadWriteMany"),
        ({**TEAMS, "folders": {"Data Team": {}}}, "Data Team"),
        ({**TEAMS, "folders": {"data-team": {"readonly": True}}}, "readonly"),
    ],
)
def test_the_schema_refuses_another_access_mode_and_bad_team_names(teams, message):
    with pytest.raises(helm.HelmValuesError) as refused:
        render_chart({"teams": teams})
    assert message in str(refused.value)


def test_team_folders_without_a_storage_class_are_refused_by_name():
    with pytest.raises(helm.HelmError) as refused:
        render_chart({"teams": {**TEAMS, "storageClassName": ""}})
    assert "teams.storageClassName" in str(refused.value)
