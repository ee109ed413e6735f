"""The pure half of the Argo executor: names, labels, the pod's command and Argo's phases as run states.

Argo's statuses here are written by hand in the shapes Argo reports (phase,
message, pod nodes with their exit code); the executor against a stand-in
API and controller is `tests/integration/test_argo_executor.py`.
"""

from __future__ import annotations

import ast
import re
from types import SimpleNamespace

import pytest
from analysis_hub.backends.kubernetes.profiles import ClusterFacts, pod_override
from analysis_hub.backends.kubernetes.workflows import (
    WorkflowSettings,
    label_value,
    object_name,
    run_labels,
    runner_source,
    template_name,
    version_pod,
    workflow,
    workflow_name,
    workflow_result,
    workflow_template,
)
from analysis_hub.pipelines.specs import RunSpec, version_settings
from analysis_hub.pipelines.steps import run_spec
from analysis_hub.settings import SettingsError, load_settings
from analysis_hub.teams import TeamFolder

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LONG = "a" * 60 + "-"  # the longest names a team and a pipeline may have, ending in '-'


def spec(**changes) -> RunSpec:
    values = {"run_id": 12345, "team": "data-team", "pipeline": "daily", "version": 3}
    values |= {"image": "pyspark", "kernel": "python3", "parameters": {}} | changes
    return RunSpec(**values)


def test_names_and_labels_are_always_valid_and_keep_runs_apart():
    """Workflow and template names are DNS labels of at most 63 characters (Argo labels pods with
    them) and label values are valid, whatever team and pipeline names the service allows; names
    cut to fit still differ, and names that fit are kept as they are."""
    long = spec(team=LONG, pipeline=LONG)
    names = [template_name(long), workflow_name(long, "abc123"), workflow_name(spec(team=LONG), "abc123")]
    assert all(DNS_LABEL.match(n) for n in names) and len(set(names)) == 3
    assert workflow_name(long, "abc123").endswith("-abc123")
    assert (template_name(spec()), workflow_name(spec(), "f00")) == (
        "data-team-daily-v3",
        "data-team-daily-12345-f00",
    )
    labels = run_labels(long)
    assert all(len(v) <= 63 and LABEL_VALUE.match(v) for v in labels.values())
    assert label_value("etl-") != label_value("etl") == "etl"
    assert labels["analysis-hub/run"] == "12345"
    assert object_name("x" * 100) != object_name("x" * 99)


def test_a_runs_pod_is_the_published_versions_profile_pod(repo_catalog):
    """A run's spec carries the version's resolved profile as published (GPU option included), so
    its Argo pod has exactly the KubeSpawner profile's pod settings, and the deployment's retries."""
    from analysis_hub.catalog import resolve

    profile = repo_catalog.get("pytorch")
    resolved = resolve(profile, {name: next(iter(c.options)) for name, c in profile.choices.items()})
    version = SimpleNamespace(
        number=4,
        image=resolved.image,
        kernel="python3",
        profile=resolved.slug,
        choices=resolved.choices,
        resources=version_settings(resolved),
        parameters={},
        steps=None,
    )
    cluster = ClusterFacts(images={"pytorch": "registry.example.com/pytorch:1"})
    spec_ = run_spec(7, "ml", "train", version, 600, {}, retries=2)
    assert version_pod(spec_, cluster) == pod_override(resolved, cluster)
    assert spec_.retries == 2


def test_a_teams_run_pod_mounts_its_teams_folder_where_its_servers_have_it():
    """A data-team run's template mounts data-team's claim at /home/jovyan/teams/data-team (the
    path in members' servers; read-only teams stay read-only); another team's run mounts none."""
    cluster = ClusterFacts(
        images={"pyspark": "registry.example.com/pyspark:1"},
        team_claims={"data-team": "analysis-hub-team-data-team", "gpu-team": "analysis-hub-team-gpu-team"},
        teams=(TeamFolder("data-team"), TeamFolder("gpu-team", read_only=True)),
    )
    settings = WorkflowSettings("s3://runs", "analysis-hub-pipeline-run")
    template = workflow_template(spec(), version_pod(spec(), cluster), settings)["spec"]
    assert template["volumes"] == [
        {"name": "team-data-team", "persistentVolumeClaim": {"claimName": "analysis-hub-team-data-team"}}
    ]
    [container] = [t["container"] for t in template["templates"] if "container" in t]
    assert container["volumeMounts"] == [
        {"name": "team-data-team", "mountPath": "/home/jovyan/teams/data-team"}
    ]
    gpu = version_pod(spec(team="gpu-team"), cluster)
    assert gpu["volume_mounts"] == [
        {"name": "team-gpu-team", "mountPath": "/home/jovyan/teams/gpu-team", "readOnly": True}
    ]
    assert version_pod(spec(team="ml"), cluster)["volumes"] == []


def test_a_run_without_retries_has_no_retry_strategy():
    """Retries become Argo's retryStrategy (retrying failures and errors) only when there are any."""
    assert "retryStrategy" not in workflow(spec(), "w", {})["spec"]
    retried = workflow(spec(retries=3), "w", {})["spec"]
    assert retried["retryStrategy"] == {"limit": 3, "retryPolicy": "Always"}


def test_run_pods_carry_the_pipeline_run_label_and_the_profiles_own():
    """Every run pod is labelled `analysis-hub/pipeline-run: "true"` (the chart's NetworkPolicy for
    runs selects it) with the run's labels and the profile's own (a Spark driver's)."""
    pod = {"extra_labels": {"analysis-hub/spark-driver": "true"}}
    labels = workflow(spec(), "w", pod)["spec"]["podMetadata"]["labels"]
    assert labels["analysis-hub/pipeline-run"] == labels["analysis-hub/spark-driver"] == "true"
    assert labels["analysis-hub/run"] == "12345"


def _wf(phase, message="", nodes=(), shutdown=None):
    status = {"phase": phase, "nodes": {str(i): n for i, n in enumerate(nodes)}}
    if message:
        status["message"] = message
    return {"metadata": {"name": "w"}, "spec": {"shutdown": shutdown} if shutdown else {}, "status": status}


def _pod(message="", code=None, finished="2026-12-02T10:00:00Z"):
    node = {"type": "Pod", "finishedAt": finished, "message": message}
    return node | ({"outputs": {"exitCode": str(code)}} if code is not None else {})


@pytest.mark.parametrize(
    ("wf", "expected"),
    [
        (_wf(""), None),
        (_wf("Pending"), None),
        (_wf("Running", nodes=[_pod()]), None),
        (_wf("Succeeded", nodes=[_pod(code=0)]), ("succeeded", 0)),
        (_wf("Failed", "child failed", [_pod("Error (exit code 1)", 1)]), ("failed", 1)),
        (_wf("Error", "pod deleted"), ("failed", None)),
        (
            _wf("Failed", nodes=[_pod("Pod was active on the node longer than the specified deadline")]),
            ("timed_out", None),
        ),
        (
            _wf("Failed", "Step exceeded its deadline", [_pod("Step exceeded its deadline", 143)]),
            ("timed_out", 143),
        ),
        (_wf("Failed", "Stopped with strategy 'Stop'", [_pod("", 143)]), ("cancelled", 143)),
        (_wf("Failed", "child failed", [_pod("", 1)], shutdown="Stop"), ("cancelled", 1)),
        # A retried run: the last attempt's exit code.
        (
            _wf("Failed", "", [_pod("Error (exit code 1)", 1, "2026-12-02T10:05:00Z"), _pod("", 2)]),
            ("failed", 1),
        ),
    ],
)
def test_argo_phases_map_to_run_states(wf, expected):
    """Running phases are not finished; Succeeded, Failed, Error, both kinds of deadline and a stop
    become succeeded, failed, timed_out and cancelled, with the notebook container's exit code."""
    result = workflow_result(wf)
    assert (result.status, result.exit_code) == expected if expected else result is None


def test_the_pods_command_is_argo_safe_and_needs_only_papermill():
    """The script the pod runs is inlined in the template, where Argo substitutes double braces:
    it holds none, parses, and imports only the standard library and papermill (the images' own)."""
    source = runner_source()
    assert "{{" not in source
    imports = {
        alias.name.split(".")[0]
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])
    }
    assert imports == {"io", "json", "logging", "operator", "os", "signal", "sys", "papermill"}


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        ("pipelines: {output_url: 'gs://bucket'}", "pipelines.output_url: must be an s3:// URL"),
        (
            "pipelines: {s3_endpoint_url: 'minio:9000'}",
            "pipelines.s3_endpoint_url: must be an http(s):// URL",
        ),
        (
            "pipelines: {s3_credentials_secret: 'S3 keys'}",
            "pipelines.s3_credentials_secret: must be a Kubernetes name",
        ),
        ("kubernetes: {namespace: Data_Team}", "kubernetes.namespace: must be a Kubernetes name"),
        (
            "kubernetes: {workflow_service_account: ''}",
            "kubernetes.workflow_service_account: must be a Kubernetes name",
        ),
    ],
)
def test_bad_argo_settings_are_refused_by_key(tmp_path, yaml, message):
    """The artifact store and the Workflows' namespace and identity are checked at start, each error
    naming the key and what is allowed."""
    path = tmp_path / "settings.yaml"
    path.write_text(yaml)
    with pytest.raises(SettingsError, match=re.escape(message)):
        load_settings(path, {})
