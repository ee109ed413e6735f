"""The Helm chart (helm/analysis-hub): our templates rendered by the real Helm engine, validated.

No cluster runs here and the Zero to JupyterHub chart can't be downloaded in CI
(only PyPI, Debian and npm are reachable), so `helm-python-sdk` (Helm's own
engine) renders our chart with that dependency absent: only our templates
render, and every manifest is validated against the Kubernetes 1.32 schemas
with kubernetes-validate. Values under `jupyterhub:` are checked here only
for the promises we make through them; the z2jh schema checks them at install.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from analysis_hub.backends.kubernetes.translate import (
    CHART_USER_TOLERATIONS,
    SPARK_BLOCKMANAGER_PORT,
    SPARK_DRIVER_LABEL,
    SPARK_DRIVER_PORT,
)
from analysis_hub.catalog import load_catalog
from analysis_hub.settings import Settings
from kube_support import CHART, K8S_VERSION, example_values, find, merge_values, render_chart
from unit_support import PROFILES, REPO

sys.path.insert(0, str(REPO / "scripts"))
import sync_chart_catalog

DEFAULTS = yaml.safe_load((CHART / "values.yaml").read_text())
EXAMPLE = ("common.yaml", "production.yaml", "secrets.example.yaml")
# Pipelines off, as README says: the switch and z2jh's registration of the service together.
PIPELINES_OFF = {"pipelines": {"enabled": False}, "jupyterhub": {"hub": {"services": {"pipelines": None}}}}
PIPELINES = {
    ("Deployment", "analysis-hub-pipelines"),
    ("Service", "pipelines"),
    ("PersistentVolumeClaim", "analysis-hub-pipelines"),
    ("ServiceAccount", "analysis-hub-pipelines"),
    ("Role", "analysis-hub-pipelines"),
    ("RoleBinding", "analysis-hub-pipelines"),
    ("NetworkPolicy", "analysis-hub-pipelines"),
    ("NetworkPolicy", "analysis-hub-pipeline-runs"),
}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def test_the_charts_default_catalog_and_schema_are_profiles():
    """profiles/ is the single source of truth: the chart's default `catalog` values equal
    profiles/*.yaml and its schema definitions equal profiles/schema.json (fails on drift;
    scripts/sync_chart_catalog.py repairs it)."""
    assert DEFAULTS["catalog"] == sync_chart_catalog.catalog_from_profiles(PROFILES)
    schema = json.loads((CHART / "values.schema.json").read_text())
    profile_schema = json.loads((PROFILES / "schema.json").read_text())
    assert schema["$defs"]["Profile"] == {k: v for k, v in profile_schema.items() if k != "$defs"}
    for name, definition in profile_schema["$defs"].items():
        assert schema["$defs"][name] == definition, name
    assert sync_chart_catalog.main(["--check"]) == 0


def test_chart_lock_matches_the_dependency_on_zero_to_jupyterhub_4_4_0():
    """Chart.yaml depends on z2jh 4.4.0 from its public repository, and Chart.lock's digest is
    the one Helm computes for that dependency list (Helm refuses a lock out of sync)."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    lock = yaml.safe_load((CHART / "Chart.lock").read_text())
    [dependency] = chart["dependencies"]
    assert (dependency["name"], dependency["version"], dependency["repository"]) == (
        "jupyterhub",
        "4.4.0",
        "https://hub.jupyter.org/helm-chart/",
    )
    assert lock["dependencies"] == [{k: dependency[k] for k in ("name", "repository", "version")}]
    # Helm's resolver.HashReq: sha256 of Go's json.Marshal([requested, locked]), field order kept.
    go_fields = ("name", "version", "repository", "condition")
    requested = [{k: d[k] for k in go_fields if d.get(k)} for d in chart["dependencies"]]
    locked = [{k: d[k] for k in go_fields if d.get(k)} for d in lock["dependencies"]]
    data = json.dumps([requested, locked], separators=(",", ":")).encode()
    assert lock["digest"] == "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    "layers",
    [(), EXAMPLE],
    ids=["chart defaults", "example: common + production + secrets"],
)
def test_every_manifest_our_templates_render_is_valid_kubernetes(layers):
    """With the chart's defaults and with the example install layered on top (OIDC, a GPU node
    pool, a Kerberized Hadoop cluster, Spark on Kubernetes), every manifest our templates render
    is valid for Kubernetes 1.32, the pipelines service's Deployment, Service, volume, RBAC and
    NetworkPolicies included (the z2jh dependency is absent here: see the module docstring)."""
    manifests = render_chart(example_values(*layers) if layers else None)
    for manifest in manifests:
        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    kinds = sorted((m["kind"], m["metadata"]["name"]) for m in manifests)
    expected = {
        ("ConfigMap", "analysis-hub-settings"),
        ("ConfigMap", "analysis-hub-catalog"),
        ("ConfigMap", "analysis-hub-dashboards"),  # the Grafana dashboard (test_monitoring.py)
        *(("DaemonSet", f"analysis-hub-puller-{image}") for image in ("pyspark", "pytorch", "tensorflow")),
        *PIPELINES,
    }
    if not layers:  # the built-in login: the admins' generated first password
        expected.add(("Secret", "analysis-hub-initial-admin"))
    if layers:
        expected |= {
            ("ConfigMap", "analysis-hub-hadoop"),
            ("NetworkPolicy", "analysis-hub-hadoop-egress"),
            ("NetworkPolicy", "analysis-hub-spark-driver"),
            ("ServiceAccount", "analysis-hub-spark"),
            ("Role", "analysis-hub-spark"),
            ("RoleBinding", "analysis-hub-spark"),
        }
    assert set(kinds) == expected and len(kinds) == len(expected)


def test_a_catalog_given_in_values_reaches_the_hubs_mounted_files_unchanged(tmp_path):
    """An admin's catalog edits in values (a changed limit, a new profile and image, a removed
    profile) arrive in the hub's mounted catalog as exactly that data, one file per profile,
    and the hub's own catalog loader accepts them."""
    new_profile = {
        "slug": "r-lang",
        "display_name": "R",
        "image": "r",
        "cpu": {"guarantee": 1, "limit": 2},
        "memory": {"guarantee": "2Gi", "limit": "4Gi"},
        "env": {"R_LIBS_USER": "/home/jovyan/R"},
    }
    values = {
        "images": {"r": "registry.example.com/analysis-hub/r:4.4"},
        "catalog": {
            "pytorch": {"memory": {"limit": "64Gi"}, "allowed_groups": ["ml-team"]},
            "tensorflow": None,  # Helm's way to remove a default
            "r-lang": new_profile,
        },
    }
    manifests = render_chart(values)
    files = find(manifests, "ConfigMap", "analysis-hub-catalog")["data"]
    expected = merge_values({"catalog": DEFAULTS["catalog"]}, values)["catalog"]
    del expected["tensorflow"]
    assert sorted(files) == ["pyspark.yaml", "pytorch.yaml", "r-lang.yaml"]
    for slug, profile in expected.items():
        assert yaml.safe_load(files[f"{slug}.yaml"]) == profile, slug
    assert yaml.safe_load(files["pytorch.yaml"])["memory"] == {"guarantee": "8Gi", "limit": "64Gi"}

    catalog_dir, images_dir = tmp_path / "profiles", tmp_path / "images"
    catalog_dir.mkdir()
    for name, text in files.items():
        (catalog_dir / name).write_text(text)
    # On Kubernetes a profile may name any image kubernetes.images gives a reference, the
    # admin's own "r" included, with no folder under images/.
    settings = yaml.safe_load(find(manifests, "ConfigMap", "analysis-hub-settings")["data"]["settings.yaml"])
    catalog = load_catalog(catalog_dir, images_dir, known_images=settings["kubernetes"]["images"])
    assert [p.slug for p in catalog.profiles] == ["pyspark", "pytorch", "r-lang"]
    settings = yaml.safe_load(find(manifests, "ConfigMap", "analysis-hub-settings")["data"]["settings.yaml"])
    assert settings["kubernetes"]["images"]["r"] == "registry.example.com/analysis-hub/r:4.4"


@pytest.mark.parametrize(
    "values, message",
    [
        ({"catalgo": {}}, "additional properties 'catalgo' not allowed"),
        ({"catalog": {"pytorch": {"gpus": -1}}}, "at '/catalog/pytorch/gpus': minimum: got -1, want 0"),
        ({"catalog": {"pytorch": {"cpus": 4}}}, "at '/catalog/pytorch': additional properties 'cpus'"),
        ({"hadoop": {"networks": [{"cidr": "10.0.0.0/8", "ports": [70000]}]}}, "/hadoop/networks/0/ports/0"),
        ({"images": {"pytorch": "Not A Reference"}}, "at '/images/pytorch'"),
        ({"settings": {"backend": "local"}}, "at '/settings': additional properties 'backend' not allowed"),
        ({"pipelines": {"replicas": 0}}, "at '/pipelines/replicas': minimum: got 0, want 1"),
        # No secret values in values files: the database URL comes from a Secret only.
        (
            {"pipelines": {"database": {"url": "postgresql://u:p@db/x"}}},
            "at '/pipelines/database': additional properties 'url' not allowed",
        ),
        ({"apiServer": {"ports": [443, 70000]}}, "at '/apiServer/ports/1'"),
        (
            {"spark": {"kubernetesExecutors": "yes"}},
            "at '/spark/kubernetesExecutors': got string, want boolean",
        ),
    ],
)
def test_values_schema_refuses_unknown_keys_and_bad_values_with_a_clear_message(values, message):
    """values.schema.json (additionalProperties: false for our keys, profiles/schema.json for the
    catalog) makes Helm refuse a misspelt key or a bad value, naming where it is, before anything
    reaches the cluster."""
    with pytest.raises(helm.HelmValuesError) as refused:
        render_chart(values)
    assert message in str(refused.value)


def test_a_profile_whose_image_has_no_reference_is_refused_by_name():
    """A catalog entry naming an image missing from `images` fails the render with the profile,
    the image and the known images, instead of a hub that can't start that profile."""
    with pytest.raises(helm.HelmError) as refused:
        render_chart({"catalog": {"julia": {"slug": "julia", "display_name": "Julia", "image": "julia"}}})
    assert (
        'catalog.julia.image: "julia" has no reference in images (known: pyspark, pytorch, tensorflow)'
        in str(refused.value)
    )


def test_each_image_is_pre_pulled_only_where_its_pods_can_run():
    """The GPU image's puller runs only on the GPU node pool (the profile's node selector and
    GPU toleration); CPU images' pullers don't tolerate GPU nodes. All tolerate the chart's
    user nodes, and pullers run without privileges or an API token."""
    manifests = render_chart()
    for image in ("pyspark", "pytorch", "tensorflow"):
        spec = find(manifests, "DaemonSet", f"analysis-hub-puller-{image}")["spec"]["template"]["spec"]
        [pull] = spec["initContainers"]
        assert pull["image"] == DEFAULTS["images"][image]
        assert spec["automountServiceAccountToken"] is False and spec["securityContext"]["runAsNonRoot"]
        assert pull["securityContext"]["allowPrivilegeEscalation"] is False
        if image == "pytorch":
            assert spec["nodeSelector"] == {"analysis-hub/node-pool": "gpu"}
            assert spec["tolerations"] == [*CHART_USER_TOLERATIONS, GPU_TOLERATION]
        else:
            assert "nodeSelector" not in spec
            assert spec["tolerations"] == list(CHART_USER_TOLERATIONS)


def test_hadoop_configuration_egress_and_spark_rbac_follow_the_values():
    """Hadoop files and krb5.conf reach their ConfigMap unchanged; user pods may reach exactly the
    Hadoop ranges and ports given; the Spark driver's fixed ports are open to executor pods only,
    and it reaches the API server only where `apiServer` says;
    the Spark service account's Role is namespaced and limited to pods, services and configmaps;
    and the hub's settings name these same resources."""
    values = example_values(*EXAMPLE)
    manifests = render_chart(values)
    hadoop = find(manifests, "ConfigMap", "analysis-hub-hadoop")["data"]
    assert hadoop == {**values["hadoop"]["files"], "krb5.conf": values["hadoop"]["krb5Conf"]}

    egress = find(manifests, "NetworkPolicy", "analysis-hub-hadoop-egress")["spec"]
    assert egress["podSelector"]["matchLabels"]["component"] == "singleuser-server"
    assert egress["policyTypes"] == ["Egress"]
    allowed = [
        (rule["to"][0]["ipBlock"]["cidr"], [(p["port"], p["protocol"]) for p in rule["ports"]])
        for rule in egress["egress"]
    ]
    assert allowed == [
        ("10.20.0.0/16", [(p, "TCP") for p in (8020, 9866, 9867, 8032, 8030, 8031, 9083)]),
        ("10.21.0.10/32", [(88, "TCP"), (88, "UDP")]),
    ]

    spark = find(manifests, "NetworkPolicy", "analysis-hub-spark-driver")["spec"]
    assert spark["podSelector"]["matchLabels"][SPARK_DRIVER_LABEL] == "true"
    [ingress] = spark["ingress"]
    assert ingress["from"] == [{"podSelector": {"matchLabels": {"spark-role": "executor"}}}]
    assert [p["port"] for p in ingress["ports"]] == [SPARK_DRIVER_PORT, SPARK_BLOCKMANAGER_PORT]
    # The driver calls the API server at exactly the addresses and ports `apiServer` gives.
    assert spark["egress"][1] == {
        "to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}],
        "ports": [{"port": 443, "protocol": "TCP"}],
    }

    role = find(manifests, "Role", "analysis-hub-spark")
    assert {r for rule in role["rules"] for r in rule["resources"]} == {
        "pods",
        "services",
        "configmaps",
        "pods/log",
    }
    binding = find(manifests, "RoleBinding", "analysis-hub-spark")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "analysis-hub-spark", "namespace": "analysis-hub"}
    ]
    assert binding["roleRef"]["kind"] == "Role"
    assert not [m for m in manifests if m["kind"].startswith("Cluster")]

    settings_file = find(manifests, "ConfigMap", "analysis-hub-settings")["data"]["settings.yaml"]
    settings = Settings.model_validate(yaml.safe_load(settings_file))
    assert settings.backend == "kubernetes" and settings.kubernetes.images == values["images"]
    assert settings.kubernetes.hadoop_configmap == "analysis-hub-hadoop" and settings.kubernetes.krb5_conf
    assert settings.kubernetes.spark_service_account == "analysis-hub-spark"
    assert settings.auth.type == "oidc" and settings.auth.oidc.client_secret_file is None
    assert settings.pipelines.enabled


def test_without_hadoop_spark_or_pipelines_nothing_of_theirs_is_created_and_no_pod_gets_a_token():
    """Without a Hadoop cluster, Spark on Kubernetes or pipelines, the chart creates no Hadoop
    ConfigMap, no extra network access, no service account or Role, and the settings name none."""
    manifests = render_chart(PIPELINES_OFF)
    # The one Secret is the built-in login's first admin password (test_first_login_...).
    assert {m["kind"] for m in manifests} == {"ConfigMap", "DaemonSet", "Secret"}
    assert [m["metadata"]["name"] for m in manifests if m["kind"] == "Secret"] == [
        "analysis-hub-initial-admin"
    ]
    settings = yaml.safe_load(find(manifests, "ConfigMap", "analysis-hub-settings")["data"]["settings.yaml"])
    assert set(settings["kubernetes"]) == {"images"}


def test_zero_to_jupyterhub_values_wire_the_hub_to_our_files_and_keep_our_promises():
    """The values we pass to z2jh (checked against its schema at install; not renderable here):
    the hub mounts our settings, hook and catalog ConfigMaps where its environment points, the
    catalog without subPath (so `helm upgrade` reaches a running hub); culling at 600 s every
    60 s; user pods non-root; cloud metadata blocked by policy, private addresses blocked except
    as our policies allow; z2jh's every-image pre-puller off."""
    jupyterhub = DEFAULTS["jupyterhub"]
    hub = jupyterhub["hub"]
    manifests = render_chart()
    configmaps = {m["metadata"]["name"]: m["data"] for m in manifests if m["kind"] == "ConfigMap"}
    volumes = {v["name"]: v["configMap"]["name"] for v in hub["extraVolumes"]}
    assert set(volumes.values()) <= set(configmaps)
    mounts = {m["mountPath"]: m for m in hub["extraVolumeMounts"]}
    settings_dir = hub["extraEnv"]["ANALYSIS_HUB_SETTINGS"].rsplit("/", 1)
    assert volumes[mounts[settings_dir[0]]["name"]] == "analysis-hub-settings"
    assert settings_dir[1] in configmaps["analysis-hub-settings"]
    catalog_mount = mounts[hub["extraEnv"]["ANALYSIS_HUB_CATALOG"]]
    assert volumes[catalog_mount["name"]] == "analysis-hub-catalog" and "subPath" not in catalog_mount
    hook = mounts["/usr/local/etc/jupyterhub/jupyterhub_config.d/analysis-hub.py"]
    assert hook["subPath"] in configmaps[volumes[hook["name"]]]
    assert (
        "from analysis_hub.backends.kubernetes.z2jh import configure"
        in configmaps["analysis-hub-settings"][hook["subPath"]]
    )
    settings = yaml.safe_load(configmaps["analysis-hub-settings"]["settings.yaml"])
    assert settings["catalog"] == hub["extraEnv"]["ANALYSIS_HUB_CATALOG"]

    cull = jupyterhub["cull"]
    assert (cull["enabled"], cull["timeout"], cull["every"], cull["users"]) == (True, 600, 60, False)
    singleuser = jupyterhub["singleuser"]
    assert (singleuser["uid"], singleuser["allowPrivilegeEscalation"]) == (1000, False)
    assert singleuser["cloudMetadata"]["blockWithIptables"] is False
    rules = singleuser["networkPolicy"]["egressAllowRules"]
    assert (
        singleuser["networkPolicy"]["enabled"]
        and not rules["cloudMetadataServer"]
        and not rules["privateIPs"]
    )
    pre_puller = jupyterhub["prePuller"]
    assert not pre_puller["hook"]["enabled"] and not pre_puller["continuous"]["enabled"]
    assert hub["config"]["JupyterHub"]["admin_access"] is False


def test_first_login_with_the_built_in_login_uses_a_generated_secret_the_hub_reads():
    """The chart's defaults (built-in login): a Secret with a generated password, kept across
    upgrades and uninstall, which the hub reads (optional, so a company login needs none); a
    company login gets no such Secret."""
    manifests = render_chart()
    secret = find(manifests, "Secret", "analysis-hub-initial-admin")
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert len(base64.b64decode(secret["data"]["password"])) == 24
    env = yaml.safe_load((CHART / "values.yaml").read_text())["jupyterhub"]["hub"]["extraEnv"]
    reference = env["INITIAL_ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert reference == {"name": "analysis-hub-initial-admin", "key": "password", "optional": True}
    company = render_chart(example_values("common.yaml", "production.yaml", "secrets.example.yaml"))
    assert not [
        m for m in company if m["kind"] == "Secret" and m["metadata"]["name"].endswith("initial-admin")
    ]
