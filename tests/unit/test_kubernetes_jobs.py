"""Pipeline steps on Kubernetes as Jobs: the Job, its pod and ConfigMap, the names, settings and Role.

No API server runs here: the server pod is built by the real CatalogKubeSpawner
(a dummy kubeconfig, `get_pod_manifest()` makes no API call) from the same
settings the Job executor reads, and the step's Job by `jobs.job_manifest`;
both are compared field by field and validated with kubernetes-validate
against the Kubernetes 1.32 schemas. The runner's framing is run on a small
notebook without a kernel, and once with papermill and a real Python kernel
(the test environment's ipykernel). Job and pod statuses are written by
hand in the shapes the API reports.
"""

from __future__ import annotations

import json
import re

import kubernetes_validate
import pytest
from analysis_hub.backends.kubernetes.jobs import (
    INPUT_DIR,
    MAX_NOTEBOOK_BYTES,
    InputTooLarge,
    input_config_map,
    job_manifest,
    job_name,
    run_pod_settings,
    runner_source,
)
from analysis_hub.backends.kubernetes.jobs_api import ROLE_RULES
from analysis_hub.backends.kubernetes.run_folders import RunFolderSettings, run_folder_claim
from analysis_hub.backends.kubernetes.run_names import label_value, object_name, run_labels
from analysis_hub.backends.kubernetes.spawner import CatalogKubeSpawner
from analysis_hub.backends.kubernetes.translate import ClusterFacts
from analysis_hub.backends.kubernetes.wiring import cluster_facts
from analysis_hub.catalog import resolve
from analysis_hub.config import HostFacts, apply_settings
from analysis_hub.images import RUN_DIR, RUN_FOLDER
from analysis_hub.pipelines.engine.executor import papermill_arguments
from analysis_hub.pipelines.publishing.specs import RunSpec
from analysis_hub.settings import SettingsError, load_settings
from kube_support import HUB, hub_user, load_request, pod_as_dict, use_dummy_kubeconfig
from traitlets.config import Config
from unit_support import IMAGES, PROFILES, run_profile

K8S = "1.32.0"
IMAGE_REFS = {
    n: f"registry.example.com/analysis-hub/{n}:abc123" for n in ("pyspark", "pytorch", "tensorflow")
}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LONG = "a" * 60 + "-"  # the longest names a team and a pipeline may have, ending in '-'
SETTINGS = {
    "backend": "kubernetes",
    "catalog": str(PROFILES),
    "images_dir": str(IMAGES),
    "teams": {"data-team": {}},
    "kubernetes": {
        "images": IMAGE_REFS,
        "hadoop_configmap": "hadoop-conf",
        "team_claims": {"data-team": "analysis-hub-team-data-team"},
        "image_pull_policy": "Always",
        "image_pull_secrets": ["registry-credentials"],
    },
}


def spec(**changes) -> RunSpec:
    values = {"run_id": 12345, "team": "data-team", "pipeline": "daily", "version": 3}
    values |= {"profile": run_profile("pyspark"), "kernel": "python3", "parameters": {"rows": 10}} | changes
    return RunSpec(**values)


@pytest.fixture
def settings(tmp_path, monkeypatch):
    use_dummy_kubeconfig(tmp_path, monkeypatch)
    path = tmp_path / "settings.yaml"
    path.write_text(json.dumps(SETTINGS))
    return load_settings(path, environ={})


async def server_pod(settings, options: dict) -> dict:
    """The profile's server pod, as the hub's real KubeSpawner builds it for a data-team member."""
    config = apply_settings(settings, Config(), HostFacts(is_root=False, cgroups_writable=False))
    # What z2jh sets from singleuser.image.pullPolicy and the pull secrets, the values the chart
    # writes into the settings' kubernetes.image_pull_* (test_chart_pipelines.py).
    config.KubeSpawner.image_pull_policy = settings.kubernetes.image_pull_policy
    config.KubeSpawner.image_pull_secrets = list(settings.kubernetes.image_pull_secrets)
    spawner = CatalogKubeSpawner(config=config, user=hub_user("alice", ["data-team"]), hub=HUB)
    spawner.user_options = options
    await load_request(spawner)
    return pod_as_dict(await spawner.get_pod_manifest())


def step_job(settings, repo_catalog, options: dict, **changes) -> dict:
    profile = repo_catalog.get(options["profile"])
    resolved = resolve(profile, {k: v for k, v in options.items() if k != "profile"})
    run = spec(profile=resolved, **changes)
    cluster = cluster_facts(settings)
    return job_manifest(run, job_name(run, "abc123"), run_pod_settings(run, cluster), cluster, "t0k3n")


@pytest.mark.parametrize(
    "options",
    [
        {"profile": "pyspark"},
        {"profile": "pytorch"},
        {"profile": "pytorch", "accelerator": "gpu2"},
        {"profile": "tensorflow"},
    ],
    ids=["pyspark", "pytorch", "pytorch-gpu2", "tensorflow"],
)
async def test_a_steps_pod_reserves_and_mounts_what_the_profiles_server_pod_does(
    settings, repo_catalog, options
):
    """Built by the same builder from the same profile: the step's container has the server's image,
    requests and limits (GPUs included), the profile's environment, the same security context (uid
    1000, no escalation, every capability dropped, non-root; fsGroup 100), the same node selector,
    tolerations, pull policy and secrets and no API token; it mounts every volume the server does
    (/dev/shm, Hadoop, the team's folder) plus the run's input and working folder. Valid Kubernetes."""
    server = await server_pod(settings, options)
    job = step_job(settings, repo_catalog, options)
    kubernetes_validate.validate(job, K8S, strict=True)
    pod, [container] = job["spec"]["template"]["spec"], job["spec"]["template"]["spec"]["containers"]
    [served] = server["spec"]["containers"]
    for key in ("image", "resources", "securityContext", "imagePullPolicy"):
        assert container[key] == served[key], key
    assert container["imagePullPolicy"] == "Always"
    for key in (
        "nodeSelector",
        "tolerations",
        "securityContext",
        "automountServiceAccountToken",
        "imagePullSecrets",
    ):
        assert pod.get(key) == server["spec"].get(key), key
    assert pod["imagePullSecrets"] == [{"name": "registry-credentials"}]
    env = {e["name"]: e["value"] for e in container["env"]}
    server_env = {e["name"]: e.get("value") for e in served["env"]}
    run_only = {"PYTHONUNBUFFERED"}
    assert {k: v for k, v in env.items() if k not in run_only}.items() <= server_env.items()
    assert all(v in pod["volumes"] for v in server["spec"]["volumes"])
    assert all(m in container["volumeMounts"] for m in served["volumeMounts"])
    team = {"name": "team-data-team", "mountPath": "/home/jovyan/teams/data-team"}
    assert team in container["volumeMounts"]
    assert {"name": "run-input", "mountPath": INPUT_DIR, "readOnly": True} in container["volumeMounts"]
    assert {"name": "run-work", "mountPath": RUN_DIR} in container["volumeMounts"]
    assert "ports" not in container and pod["restartPolicy"] == "Never"


def test_the_jobs_retries_deadline_and_lifetime_come_from_the_step(settings, repo_catalog):
    """`retries` is the Job's backoffLimit, the timeout its activeDeadlineSeconds; a retry is a new
    pod (restartPolicy Never); an evicted or preempted pod doesn't use up a retry; the Job and its
    pods stay a week. The container runs the runner from the input ConfigMap through the image's
    entry point, with papermill's command line as the other backends run it."""
    job = step_job(settings, repo_catalog, {"profile": "pyspark"}, retries=2, timeout=1800)
    assert {k: v for k, v in job["spec"].items() if k != "template"} == {
        "backoffLimit": 2,
        "activeDeadlineSeconds": 1800,
        "ttlSecondsAfterFinished": 7 * 86400,
        "podFailurePolicy": {
            "rules": [
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
            ]
        },
    }
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert "command" not in container  # the image's entry point (tini, start hooks) runs first
    assert container["args"] == [
        "python",
        f"{INPUT_DIR}/notebook_runner.py",
        INPUT_DIR,
        RUN_DIR,
        "t0k3n",
        "--",
        "python",
        *papermill_arguments("python3"),
    ]
    assert container["workingDir"] == RUN_DIR
    assert step_job(settings, repo_catalog, {"profile": "pyspark"})["spec"]["backoffLimit"] == 0


def test_labels_say_whose_run_it_is_and_the_pods_carry_the_run_pod_label(settings, repo_catalog):
    """Job and pods are labelled with team, pipeline, version and run id (and the step's name), the
    exact names as annotations; the pods also carry `analysis-hub/pipeline-run: "true"` (the
    chart's NetworkPolicy for runs selects it) and the Job's name, which the executor lists its
    pods by."""
    job = step_job(settings, repo_catalog, {"profile": "tensorflow"}, step="train")
    labels = {
        "analysis-hub/team": "data-team",
        "analysis-hub/pipeline": "daily",
        "analysis-hub/version": "3",
        "analysis-hub/run": "12345",
        "analysis-hub/step": "train",
    }
    assert job["metadata"]["labels"] == labels
    template = job["spec"]["template"]["metadata"]
    assert template["labels"] == {
        **labels,
        "analysis-hub/pipeline-run": "true",
        "analysis-hub/job": job["metadata"]["name"],
    }
    exact = {"analysis-hub/team": "data-team", "analysis-hub/pipeline": "daily", "analysis-hub/step": "train"}
    assert job["metadata"]["annotations"] == template["annotations"] == exact


def test_a_workflow_step_mounts_its_runs_folder_claim_where_docker_mounts_the_folder(settings, repo_catalog):
    """A workflow's step mounts the run's claim (one per run, the name run_folders creates it under)
    at the docker backend's path, named by ANALYSIS_HUB_RUN_FOLDER; a single-notebook run has none."""
    job = step_job(settings, repo_catalog, {"profile": "pyspark"}, step="prepare")
    pod = job["spec"]["template"]["spec"]
    claim = run_folder_claim(spec(step="prepare"), RunFolderSettings())["metadata"]["name"]
    assert {"name": "run-folder", "persistentVolumeClaim": {"claimName": claim}} in pod["volumes"]
    [container] = pod["containers"]
    assert {"name": "run-folder", "mountPath": RUN_FOLDER} in container["volumeMounts"]
    assert {"name": "ANALYSIS_HUB_RUN_FOLDER", "value": RUN_FOLDER} in container["env"]
    single = step_job(settings, repo_catalog, {"profile": "pyspark"})["spec"]["template"]["spec"]
    assert "run-folder" not in {v["name"] for v in single["volumes"]}


def test_only_a_spark_driver_step_gets_a_service_account_and_its_token(repo_catalog):
    """With Spark on Kubernetes, a pyspark step (the driver) runs as the Spark service account with
    its token and the driver label; a tensorflow step has neither."""
    cluster = ClusterFacts(
        images=IMAGE_REFS, hadoop_images=frozenset({"pyspark"}), spark_service_account="analysis-hub-spark"
    )

    def pod(image: str) -> dict:
        run = spec(profile=resolve(repo_catalog.get(image)))
        job = job_manifest(run, "j", run_pod_settings(run, cluster), cluster, "t")
        return job["spec"]["template"]

    driver = pod("pyspark")
    assert driver["spec"]["serviceAccountName"] == "analysis-hub-spark"
    assert driver["spec"]["automountServiceAccountToken"] is True
    assert driver["metadata"]["labels"]["analysis-hub/spark-driver"] == "true"
    other = pod("tensorflow")
    assert (
        "serviceAccountName" not in other["spec"] and other["spec"]["automountServiceAccountToken"] is False
    )


def test_the_input_config_map_carries_the_run_and_is_owned_by_its_job():
    """The ConfigMap holds the notebook, the typed parameters and the runner; the Job owns it, so it
    goes with the Job. A notebook over 900 KiB is refused, naming the limit."""
    config_map = input_config_map(
        spec(), "data-team-daily-12345-abc123", "{}", ("data-team-daily-12345-abc123", "u-1")
    )
    kubernetes_validate.validate(config_map, K8S, strict=True)
    assert config_map["data"] == {
        "input.ipynb": "{}",
        "parameters.json": '{"rows": 10}',
        "notebook_runner.py": runner_source(),
    }
    assert config_map["metadata"]["ownerReferences"] == [
        {"apiVersion": "batch/v1", "kind": "Job", "name": "data-team-daily-12345-abc123", "uid": "u-1"}
    ]
    assert config_map["metadata"]["labels"] == run_labels(spec())
    with pytest.raises(InputTooLarge, match="at most 900 KiB"):
        input_config_map(spec(), "x", "x" * (MAX_NOTEBOOK_BYTES + 1))


def test_names_and_labels_are_always_valid_and_keep_runs_apart():
    """Job names are DNS labels of at most 63 characters (the Job controller labels pods with them)
    and label values are valid, whatever team and pipeline names the service allows; names cut
    to fit still differ, and names that fit are kept as they are."""
    long = spec(team=LONG, pipeline=LONG)
    names = [job_name(long, "abc123"), job_name(spec(team=LONG), "abc123"), job_name(long, "def456")]
    assert all(DNS_LABEL.match(n) for n in names) and len(set(names)) == 3
    assert job_name(spec(), "f00") == "data-team-daily-12345-f00"
    assert job_name(spec(step="train_model"), "f00") == "data-team-daily-12345-train-model-f00"
    labels = run_labels(long)
    assert all(len(v) <= 63 and LABEL_VALUE.match(v) for v in labels.values())
    assert label_value("etl-") != label_value("etl") == "etl"
    assert object_name("x" * 100) != object_name("x" * 99)


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        ("kubernetes: {namespace: Data_Team}", "kubernetes.namespace: must be a Kubernetes name"),
        ("kubernetes: {image_pull_policy: Sometimes}", "kubernetes.image_pull_policy"),
        ("kubernetes: {image_pull_secrets: ['Registry Keys']}", "kubernetes.image_pull_secrets"),
        ("pipelines: {run_folder_size: 10GB}", "pipelines.run_folder_size"),
    ],
)
def test_bad_job_settings_are_refused_by_key(tmp_path, yaml, message):
    """The Jobs' namespace, pull policy and secrets and the run folder are checked at start, each
    error naming the key."""
    path = tmp_path / "settings.yaml"
    path.write_text(yaml)
    with pytest.raises(SettingsError, match=re.escape(message)):
        load_settings(path, {})


def test_the_role_rules_name_each_call_once():
    """ROLE_RULES allow Jobs, ConfigMaps, pods, their logs and the run folders' claims, nothing
    cluster-wide and no wildcard (the chart's Role equals them: test_chart_pipelines.py)."""
    resources = [r for rule in ROLE_RULES for r in rule["resources"]]
    assert sorted(resources) == ["configmaps", "jobs", "persistentvolumeclaims", "pods", "pods/log"]
    assert "*" not in json.dumps(ROLE_RULES)
