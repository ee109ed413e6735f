"""The chart's pipelines service: its own Deployment beside Zero to JupyterHub, rendered and checked.

As in test_chart.py, the real Helm engine renders our templates with the z2jh
dependency absent (it can't be downloaded here). What z2jh does with our
`jupyterhub.hub.services.pipelines` values is taken from z2jh 4.4.0's own
templates: `templates/hub/secret.yaml` keeps a generated API token for each
`hub.services` entry in its Secret (`hub`, or `hub.existingSecret`) under the
key `hub.services.<name>.apiToken`, and its jupyterhub_config.py registers
the entry with that token; test_kubernetes_z2jh.py runs the hub's side.
"""

from __future__ import annotations

import json

import helm_python as helm
import pytest
import yaml
from analysis_hub.backends.kubernetes.jobs_api import ROLE_RULES
from analysis_hub.config import PIPELINES_ACCESS, pipelines_oauth, pipelines_service_prefix
from analysis_hub.settings import Settings, env_overrides
from kube_support import CHART, example_values, find, merge_values, render_chart

DEFAULTS = yaml.safe_load((CHART / "values.yaml").read_text())
EXAMPLE = ("common.yaml", "production.yaml", "secrets.example.yaml")
Z2JH_TOKEN_KEY = "hub.services.pipelines.apiToken"
PRIVATE = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
DNS = {
    "to": [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}},
        *({"ipBlock": {"cidr": cidr}} for cidr in PRIVATE),
    ],
    "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
}


def to(cidr: str, *ports: int) -> dict:
    return {"to": [{"ipBlock": {"cidr": cidr}}], "ports": [{"port": p, "protocol": "TCP"} for p in ports]}


def z2jh_pods(component: str) -> dict:
    """The labels z2jh 4.4.0 puts on its hub and proxy pods."""
    return {
        "matchLabels": {
            "app.kubernetes.io/component": component,
            "app.kubernetes.io/instance": "analysis-hub",
        }
    }


def service_container(manifests: list[dict]) -> tuple[dict, dict]:
    pod = find(manifests, "Deployment", "analysis-hub-pipelines")["spec"]["template"]
    [container] = pod["spec"]["containers"]
    return pod, container


def env_of(container: dict) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def chart_settings(manifests: list[dict]) -> Settings:
    text = find(manifests, "ConfigMap", "analysis-hub-settings")["data"]["settings.yaml"]
    return Settings.model_validate(yaml.safe_load(text))


def test_pipelines_are_on_by_default_and_the_service_is_its_own_deployment():
    """Under the chart pipelines are on by default, and the service is a Deployment of its own
    (the hub image, `python -m analysis_hub.pipelines`, its own service account), never a process
    in the hub pod; its Kubernetes Service reaches the pod's port, which is the settings'
    `pipelines.port`; z2jh registers it at exactly that Service's URL; its readiness probe is the
    health endpoint under the service's prefix; its state lies on its own volume."""
    manifests = render_chart()
    settings = chart_settings(manifests)
    assert DEFAULTS["pipelines"]["enabled"] and settings.pipelines.enabled
    pod, container = service_container(manifests)
    hub_image = DEFAULTS["jupyterhub"]["hub"]["image"]
    assert container["image"] == f"{hub_image['name']}:{hub_image['tag']}"
    assert container["command"] == ["python", "-m", "analysis_hub.pipelines"]
    assert pod["spec"]["serviceAccountName"] == "analysis-hub-pipelines"
    assert (
        pod["spec"]["securityContext"]["runAsNonRoot"]
        and container["securityContext"]["readOnlyRootFilesystem"]
    )
    [port] = container["ports"]
    assert port == {"name": "http", "containerPort": settings.pipelines.port, "protocol": "TCP"}

    service = find(manifests, "Service", "pipelines")["spec"]
    assert service["selector"].items() <= pod["metadata"]["labels"].items()
    [service_port] = service["ports"]
    assert service_port["targetPort"] == "http"
    registered = DEFAULTS["jupyterhub"]["hub"]["services"]["pipelines"]
    assert registered == {"url": f"http://pipelines:{service_port['port']}"}, "no token, no command"

    probe = container["readinessProbe"]["httpGet"]
    assert probe == {"path": env_of(container)["JUPYTERHUB_SERVICE_PREFIX"] + "health", "port": "http"}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert settings.pipelines.data_dir.parent.as_posix() == mounts["state"]
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    claim = volumes["state"]["persistentVolumeClaim"]["claimName"]
    assert find(manifests, "PersistentVolumeClaim", claim)["spec"]["accessModes"] == ["ReadWriteOnce"]
    # One pod at a time on a ReadWriteOnce volume.
    assert find(manifests, "Deployment", "analysis-hub-pipelines")["spec"]["strategy"] == {"type": "Recreate"}


@pytest.mark.parametrize("existing_secret", [None, "company-hub-secret"])
def test_the_service_reads_its_token_and_database_url_from_secrets_only(existing_secret):
    """The hub API token comes from z2jh's hub Secret (or `hub.existingSecret`, where z2jh then
    reads it too) under z2jh's key for `hub.services.pipelines`; the database URL from the Secret
    and key `pipelines.database` names, as the settings override of `pipelines.database_url`.
    No secret value is written into the manifest."""
    values = {"pipelines": {"database": {"existingSecret": "pipelines-pg", "key": "dsn"}}}
    if existing_secret:
        values["jupyterhub"] = {"hub": {"existingSecret": existing_secret}}
    _, container = service_container(render_chart(values))
    env = env_of(container)
    assert env["JUPYTERHUB_API_TOKEN"] == {
        "secretKeyRef": {"name": existing_secret or "hub", "key": Z2JH_TOKEN_KEY}
    }
    assert env["ANALYSIS_HUB_PIPELINES__DATABASE_URL"] == {
        "secretKeyRef": {"name": "pipelines-pg", "key": "dsn"}
    }
    # The hub's own settings loader reads that variable as pipelines.database_url.
    assert env_overrides({"ANALYSIS_HUB_PIPELINES__DATABASE_URL": "postgresql://x"}) == {
        "pipelines.database_url": "postgresql://x"
    }
    plain = {e["name"] for e in container["env"] if "value" in e}
    assert not plain & {"JUPYTERHUB_API_TOKEN", "ANALYSIS_HUB_PIPELINES__DATABASE_URL"}


@pytest.mark.parametrize("base_url", ["/", "/analytics/"])
def test_the_hub_and_the_service_pod_agree_on_the_oauth_client(base_url):
    """The OAuth client the hub registers for the service (`config.pipelines_oauth`, which
    apply_under_z2jh adds to z2jh's entry) and the one the service pod's HubOAuth reads from its
    environment are the same client id, callback, prefix and access scope, at any hub base URL;
    the pod reaches the hub's API at z2jh's `hub` Service."""
    manifests = render_chart({"jupyterhub": {"hub": {"baseUrl": base_url}}})
    _, container = service_container(manifests)
    env = env_of(container)
    registered = pipelines_oauth(base_url)
    assert env["JUPYTERHUB_CLIENT_ID"] == registered["oauth_client_id"]
    assert env["JUPYTERHUB_OAUTH_CALLBACK_URL"] == registered["oauth_redirect_uri"]
    assert env["JUPYTERHUB_SERVICE_PREFIX"] == pipelines_service_prefix(base_url)
    assert json.loads(env["JUPYTERHUB_OAUTH_ACCESS_SCOPES"]) == [PIPELINES_ACCESS]
    assert env["JUPYTERHUB_API_URL"] == f"http://hub:8081{base_url}hub/api"
    assert container["readinessProbe"]["httpGet"]["path"] == f"{pipelines_service_prefix(base_url)}health"


def test_the_service_role_allows_exactly_what_the_job_executor_uses():
    """The service's Role, namespaced, holds exactly the Job executor's rules (`jobs_api.ROLE_RULES`:
    every call `JobsApi` and the run folders' `ClaimsApi` make; no cronjobs: the service starts
    scheduled runs itself) and is bound to its service account only; run pods get no identity of
    their own (the notebook has no API token unless it is a Spark driver)."""
    manifests = render_chart()
    assert find(manifests, "Role", "analysis-hub-pipelines")["rules"] == list(ROLE_RULES)
    binding = find(manifests, "RoleBinding", "analysis-hub-pipelines")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "analysis-hub-pipelines", "namespace": "analysis-hub"}
    ]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "analysis-hub-pipelines",
    }
    assert not [m for m in manifests if "pipeline-run" in m["metadata"]["name"] and "Role" in m["kind"]]
    assert not [m for m in manifests if m["kind"].startswith("Cluster")]
    assert "cronjobs" not in json.dumps([m for m in manifests if m["kind"] == "Role"])


def test_the_service_pod_talks_only_to_the_hub_the_api_dns_and_its_database():
    """The service pod's NetworkPolicy: ingress only from z2jh's hub and proxy pods on the service
    port; egress only to the hub's API port, the Kubernetes API server, DNS, PostgreSQL and the
    extra (webhook) destinations, each at the addresses the values give; the pod carries the
    label z2jh's hub policy admits."""
    manifests = render_chart(example_values(*EXAMPLE))
    pod, _ = service_container(manifests)
    policy = find(manifests, "NetworkPolicy", "analysis-hub-pipelines")["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert pod["metadata"]["labels"]["hub.jupyter.org/network-access-hub"] == "true"
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["ingress"] == [
        {
            "from": [{"podSelector": z2jh_pods("hub")}, {"podSelector": z2jh_pods("proxy")}],
            "ports": [{"port": 8080, "protocol": "TCP"}],
        }
    ]
    assert policy["egress"] == [
        {"to": [{"podSelector": z2jh_pods("hub")}], "ports": [{"port": 8081, "protocol": "TCP"}]},
        to("10.0.0.1/32", 443),  # apiServer (production.yaml)
        DNS,
        to("10.30.0.15/32", 5432),  # pipelines.database.networks
        to("10.50.0.0/24", 443),  # pipelines.extraEgress
    ]


def test_pipeline_run_pods_get_a_user_pods_network():
    """Pods labelled `analysis-hub/pipeline-run: "true"` (the Job executor's runs) get what a
    user pod gets: no ingress, DNS, public addresses but never private ones or the cloud
    metadata address (as the chart's `singleuser.networkPolicy` values say), the Hadoop networks
    user pods may reach, and the API server only where Spark runs executors as pods (a pyspark
    run is a Spark driver). Opening private addresses to user pods opens them to runs too."""
    values = example_values(*EXAMPLE)
    manifests = render_chart(values)
    policy = find(manifests, "NetworkPolicy", "analysis-hub-pipeline-runs")["spec"]
    assert policy["podSelector"] == {"matchLabels": {"analysis-hub/pipeline-run": "true"}}
    assert policy["policyTypes"] == ["Ingress", "Egress"] and not policy.get("ingress")
    user_hadoop = find(manifests, "NetworkPolicy", "analysis-hub-hadoop-egress")["spec"]["egress"]
    public = {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": [*PRIVATE, "169.254.169.254/32"]}}]}
    assert policy["egress"] == [
        DNS,
        public,
        *user_hadoop,
        to("10.0.0.1/32", 443),  # spark.kubernetesExecutors (production.yaml)
    ]
    without_spark = merge_values(values, {"spark": {"kubernetesExecutors": False}})
    runs = find(render_chart(without_spark), "NetworkPolicy", "analysis-hub-pipeline-runs")
    assert to("10.0.0.1/32", 443) not in runs["spec"]["egress"]
    opened = {"jupyterhub": {"singleuser": {"networkPolicy": {"egressAllowRules": {"privateIPs": True}}}}}
    runs = find(render_chart(merge_values(values, opened)), "NetworkPolicy", "analysis-hub-pipeline-runs")
    assert {"to": [{"ipBlock": {"cidr": cidr}} for cidr in PRIVATE]} in runs["spec"]["egress"]


def test_the_settings_give_run_pods_z2jhs_pull_policy_and_secrets_and_the_public_url():
    """Run pods pull their image as z2jh's user pods do: the settings file's
    `kubernetes.image_pull_policy` is `jupyterhub.singleuser.image.pullPolicy` (IfNotPresent when
    unset) and `image_pull_secrets` the user pods' pull secrets by name (singleuser's, the global
    ones, z2jh's injected Secret), each once; notifications link to the hub's public URL."""
    defaults = chart_settings(render_chart())
    assert (defaults.kubernetes.image_pull_policy, defaults.kubernetes.image_pull_secrets) == (
        "IfNotPresent",
        [],
    )
    z2jh = {
        "fullnameOverride": "",
        "imagePullSecrets": ["registry-a", {"name": "registry-b"}],
        "imagePullSecret": {"create": True},
        "singleuser": {"image": {"pullPolicy": "Always", "pullSecrets": [{"name": "registry-a"}]}},
    }
    settings = chart_settings(render_chart(merge_values(example_values(*EXAMPLE), {"jupyterhub": z2jh})))
    assert settings.kubernetes.image_pull_policy == "Always"
    assert settings.kubernetes.image_pull_secrets == ["registry-a", "registry-b", "image-pull-secret"]
    assert settings.pipelines.public_url == "https://hub.example.com"  # common.yaml


def test_the_charts_run_folder_values_become_the_services_settings():
    """`pipelines.runFolder` in the chart's values reaches the service's settings file (the size,
    class and access mode of each workflow run's folder claim); the defaults are the settings'
    own, and a bad size is refused by the chart's schema before anything is installed."""
    run_folder = {"size": "100Gi", "storageClassName": "cephfs", "accessMode": "ReadWriteMany"}
    chosen = chart_settings(render_chart({"pipelines": {"runFolder": run_folder}})).pipelines
    assert (chosen.run_folder_size, chosen.run_folder_storage_class, chosen.run_folder_access_mode) == (
        "100Gi",
        "cephfs",
        "ReadWriteMany",
    )
    default = chart_settings(render_chart()).pipelines
    assert (default.run_folder_size, default.run_folder_storage_class, default.run_folder_access_mode) == (
        "10Gi",
        None,
        "ReadWriteOnce",
    )
    with pytest.raises(helm.HelmValuesError, match="/pipelines/runFolder/size"):
        render_chart({"pipelines": {"runFolder": {"size": "lots"}}})


def test_no_service_of_ours_is_named_like_a_settings_override():
    """Kubernetes gives every pod in the namespace, the hub's too, variables named after each
    Service (`<NAME>_SERVICE_HOST`...); none of our Services' may be read by the settings
    loader as an `ANALYSIS_HUB_*` override, which would stop the hub with an unknown key."""
    services = [
        m["metadata"]["name"] for m in render_chart(example_values(*EXAMPLE)) if m["kind"] == "Service"
    ]
    assert services == ["pipelines"]
    for name in services:
        prefix = name.upper().replace("-", "_")
        assert (
            env_overrides({f"{prefix}_SERVICE_HOST": "10.0.0.9", f"{prefix}_PORT": "tcp://10.0.0.9:8080"})
            == {}
        )


@pytest.mark.parametrize(
    "values, message",
    [
        (
            {"jupyterhub": {"hub": {"services": {"pipelines": {"url": "http://pipelines:9000"}}}}},
            'jupyterhub.hub.services.pipelines.url: must be "http://pipelines:8080"',
        ),
        (
            {"jupyterhub": {"hub": {"services": {"pipelines": None}}}},
            'jupyterhub.hub.services.pipelines.url: must be "http://pipelines:8080"',
        ),
        (
            {"pipelines": {"enabled": False}},
            "jupyterhub.hub.services.pipelines: set it to null while pipelines.enabled is false",
        ),
        ({"pipelines": {"replicas": 2}}, "pipelines.replicas: more than 1 needs"),
    ],
)
def test_pipelines_values_that_cant_work_are_refused_naming_the_key(values, message):
    """Values that would leave the hub and the service disagreeing (a URL other than the
    Service's, a registered service that doesn't run, or none registered) or replicas sharing a
    ReadWriteOnce volume fail the render with the key."""
    with pytest.raises(helm.HelmError) as refused:
        render_chart(values)
    assert message in str(refused.value)


def test_more_replicas_render_with_shared_storage_and_pipelines_turn_off_cleanly():
    """Two replicas are accepted on ReadWriteMany storage (rolling updates then); with pipelines
    off (and z2jh's registration removed) no pipelines resource is left and the settings say off."""
    shared = {"pipelines": {"replicas": 2, "storage": {"accessModes": ["ReadWriteMany"]}}}
    deployment = find(render_chart(shared), "Deployment", "analysis-hub-pipelines")["spec"]
    assert deployment["replicas"] == 2 and "strategy" not in deployment
    off = render_chart(
        {"pipelines": {"enabled": False}, "jupyterhub": {"hub": {"services": {"pipelines": None}}}}
    )
    assert not [m for m in off if "pipeline" in m["metadata"]["name"]]
    assert not chart_settings(off).pipelines.enabled
