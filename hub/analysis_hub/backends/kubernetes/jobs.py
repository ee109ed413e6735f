"""Pipeline steps on Kubernetes as batch/v1 Jobs: the objects the executor sends (pure).

Contract:
- `run_pod_settings(spec, cluster)` is a run pod's settings: the version's
  resolved profile through the same translation as the profile's server pod
  (`profiles.pod_override`: image, CPU and memory guarantees and limits, the
  GPU limit, node selector, the chart's and the profile's tolerations, env,
  /dev/shm and Hadoop volumes, the Spark service account), plus its team's
  folder (`profiles.team_volumes`, at the path its members' servers have).
- `input_config_map(spec, name, notebook, owner)` is the ConfigMap the pod
  reads its input from: `input.ipynb`, `parameters.json` and the runner
  (`notebook_runner.py`). A notebook over `MAX_NOTEBOOK_BYTES` (900 KiB; a
  ConfigMap holds at most 1 MiB) raises `InputTooLarge`, naming the limit.
  `owner` (the Job's name and uid) makes the Job its owner, so it goes
  with the Job.
- `job_manifest(spec, name, pod, cluster, token)` is the step's Job. Its pod
  is built by KubeSpawner's own builder, `kubespawner.objects.make_pod`,
  with the profile's values, exactly as the server pod is built: uid 1000,
  fsGroup 100, no privilege escalation, every capability dropped, non-root,
  no API token unless the profile needs one (Spark on Kubernetes: then its
  service account), the pull policy and secrets of `ClusterFacts`; then
  serialised (the Kubernetes client's `sanitize_for_serialization`). The
  container runs `notebook_runner.py` through the image's entry point (its
  start hooks and tini, as for a server), which runs papermill
  (`papermill_arguments`, as on the other backends) in a writable
  `images.RUN_DIR` and frames the output notebook on stdout with `token`.
  `spec.retries` is `backoffLimit`, `spec.timeout` `activeDeadlineSeconds`;
  `restartPolicy: Never` (a retry is a new pod); an evicted or preempted pod
  (`DisruptionTarget`) is retried without using up a retry; the Job and its
  pods stay `KEEP_FINISHED_SECONDS`. Job, pods and ConfigMap carry the run's
  labels (`run_names.run_labels`, exact names as annotations); the pods
  also `PIPELINE_RUN_LABEL`, the profile's own labels and `JOB_LABEL`. A
  workflow's step mounts its run's folder claim at `images.RUN_FOLDER`, named by
  `ANALYSIS_HUB_RUN_FOLDER`.
"""

from __future__ import annotations

import json
from importlib import resources

from ...images import JOVYAN_GID, JOVYAN_UID, RUN_DIR, RUN_FOLDER
from ...pipelines.engine.executor import INPUT, PARAMETERS, papermill_arguments
from ...pipelines.publishing.specs import RUN_FOLDER_ENV, RunSpec
from .run_names import (
    KEEP_FINISHED_SECONDS,
    LABEL_PREFIX,
    PIPELINE_RUN_LABEL,
    RUN_VOLUME,
    object_name,
    run_annotations,
    run_folder_claim_name,
    run_labels,
)
from .translate import ClusterFacts, pod_override, team_volumes

RUNNER = "notebook_runner.py"
INPUT_DIR = "/etc/analysis-hub/run"  # the run's ConfigMap, read-only
INPUT_VOLUME, WORK_VOLUME = "run-input", "run-work"
CONTAINER = "notebook"  # the container make_pod builds
JOB_LABEL = LABEL_PREFIX + "job"  # on a Job's pods: which Job (and attempt series) they belong to
SERVER_PORT = 8888  # make_pod declares a port; a run listens on none, so the Job's pod drops it
MAX_NOTEBOOK_BYTES = 900 * 1024
MAX_CONFIG_MAP_BYTES = 1024 * 1024  # what the API server accepts in one ConfigMap's data


class InputTooLarge(ValueError):
    """The run's input does not fit in a ConfigMap."""


def job_name(spec: RunSpec, nonce: str) -> str:
    step = f"-{spec.step}" if spec.step else ""
    return object_name(f"{spec.team}-{spec.pipeline}-{spec.run_id}{step}", nonce)


def runner_source() -> str:
    return resources.files(__package__).joinpath(RUNNER).read_text()


def run_pod_settings(spec: RunSpec, cluster: ClusterFacts) -> dict:
    """A run pod's settings: the profile's (`pod_override`) and its team's folder."""
    pod = pod_override(spec.profile, cluster)
    # A run is its team's: that team's folder only, where a member's server has it.
    volumes, mounts = team_volumes(tuple(f for f in cluster.teams if f.team == spec.team), cluster)
    return {
        **pod,
        "volumes": [*pod["volumes"], *volumes],
        "volume_mounts": [*pod["volume_mounts"], *mounts],
    }


def input_config_map(spec: RunSpec, name: str, notebook: str, owner: tuple[str, str] | None = None) -> dict:
    """The ConfigMap `name` with the run's notebook, parameters and runner; owned by the Job
    `owner` (name, uid) when given."""
    size = len(notebook.encode())
    if size > MAX_NOTEBOOK_BYTES:
        raise InputTooLarge(
            f"the notebook is {size / 1024:.0f} KiB; a pipeline run on Kubernetes takes notebooks of"
            f" at most {MAX_NOTEBOOK_BYTES // 1024} KiB (it travels in a ConfigMap, at most 1 MiB):"
            " clear large outputs before publishing"
        )
    data = {INPUT: notebook, PARAMETERS: json.dumps(spec.parameters), RUNNER: runner_source()}
    total = sum(len(k.encode()) + len(v.encode()) for k, v in data.items())
    if total > MAX_CONFIG_MAP_BYTES:
        raise InputTooLarge(
            f"the notebook and its parameters are {total / 1024:.0f} KiB together; a pipeline run on"
            " Kubernetes takes at most 1 MiB (one ConfigMap)"
        )
    metadata = {"name": name, "labels": run_labels(spec), "annotations": run_annotations(spec)}
    if owner is not None:
        metadata["ownerReferences"] = [
            {"apiVersion": "batch/v1", "kind": "Job", "name": owner[0], "uid": owner[1]}
        ]
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}


def runner_arguments(spec: RunSpec, token: str) -> list[str]:
    """The container's arguments (after the image's entry point): the runner, then papermill."""
    return [
        "python",
        f"{INPUT_DIR}/{RUNNER}",
        INPUT_DIR,
        RUN_DIR,
        token,
        "--",
        "python",
        *papermill_arguments(spec.kernel),
    ]


def run_env(spec: RunSpec, pod: dict) -> dict[str, str]:
    """The notebook's environment: the profile's, the image (as KubeSpawner gives a server), and
    a workflow step's run folder."""
    env = {
        **pod.get("environment", {}),
        "JUPYTER_IMAGE": pod["image"],
        "JUPYTER_IMAGE_SPEC": pod["image"],
        "PYTHONUNBUFFERED": "1",  # the log reaches the run page as it is written
    }
    if spec.step:
        env[RUN_FOLDER_ENV] = RUN_FOLDER
    return env


def run_volumes(spec: RunSpec, name: str, pod: dict) -> tuple[list[dict], list[dict]]:
    """The pod's volumes and the container's mounts: the profile's and team's, the run's input and
    working folder, and a workflow step's run folder."""
    volumes = [
        *pod.get("volumes", []),
        {"name": INPUT_VOLUME, "configMap": {"name": name}},
        {"name": WORK_VOLUME, "emptyDir": {}},
    ]
    mounts = [
        *pod.get("volume_mounts", []),
        {"name": INPUT_VOLUME, "mountPath": INPUT_DIR, "readOnly": True},
        {"name": WORK_VOLUME, "mountPath": RUN_DIR},
    ]
    if spec.step:  # a workflow's step: the run's shared folder, one claim per run
        claim = run_folder_claim_name(spec.team, spec.pipeline, spec.run_id)
        volumes.append({"name": RUN_VOLUME, "persistentVolumeClaim": {"claimName": claim}})
        mounts.append({"name": RUN_VOLUME, "mountPath": RUN_FOLDER})
    return volumes, mounts


def pod_labels(spec: RunSpec, name: str, pod: dict) -> dict[str, str]:
    """A run pod's labels: the run's, a pipeline run's, the profile's own (the Spark driver's)."""
    return {**run_labels(spec), **PIPELINE_RUN_LABEL, **(pod.get("extra_labels") or {}), JOB_LABEL: name}


def run_pod(spec: RunSpec, name: str, pod: dict, cluster: ClusterFacts, token: str) -> dict:
    """The step's pod, built by KubeSpawner's `make_pod` as a server's is, serialised."""
    from kubespawner.objects import make_pod

    volumes, mounts = run_volumes(spec, name, pod)
    built = make_pod(
        name=name,
        cmd=runner_arguments(spec, token),
        port=SERVER_PORT,
        image=pod["image"],
        image_pull_policy=cluster.image_pull_policy,
        image_pull_secrets=list(cluster.image_pull_secrets) or None,
        node_selector=pod.get("node_selector") or None,
        uid=JOVYAN_UID,
        fs_gid=JOVYAN_GID,
        allow_privilege_escalation=False,
        container_security_context={"capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True},
        env=run_env(spec, pod),
        working_dir=RUN_DIR,
        volumes=volumes,
        volume_mounts=mounts,
        labels=pod_labels(spec, name, pod),
        annotations=run_annotations(spec),
        cpu_limit=pod.get("cpu_limit"),
        cpu_guarantee=pod.get("cpu_guarantee"),
        mem_limit=pod.get("mem_limit"),
        mem_guarantee=pod.get("mem_guarantee"),
        extra_resource_limits=pod.get("extra_resource_limits") or None,
        # The notebook gets no API token unless the profile needs one (Spark on Kubernetes).
        service_account=pod.get("service_account"),
        automount_service_account_token=bool(pod.get("automount_service_account_token", False)),
        tolerations=pod.get("tolerations") or None,
    )
    return serialise(built)


def serialise(model) -> dict:
    """A client model as the API takes it (`ApiClient.sanitize_for_serialization`). It uses no
    connection, so the client's serialiser runs without opening one."""
    from kubernetes_asyncio.client import ApiClient

    return ApiClient.sanitize_for_serialization(ApiClient.__new__(ApiClient), model)


def job_manifest(spec: RunSpec, name: str, pod: dict, cluster: ClusterFacts, token: str) -> dict:
    """The step's Job `name` (see the module's contract)."""
    built = run_pod(spec, name, pod, cluster, token)
    metadata = {k: v for k, v in built["metadata"].items() if k != "name"}
    pod_spec = {**built["spec"], "restartPolicy": "Never"}  # a retry is a new pod, with its own log
    pod_spec["containers"] = [{k: v for k, v in c.items() if k != "ports"} for c in pod_spec["containers"]]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": run_labels(spec), "annotations": run_annotations(spec)},
        "spec": {
            "backoffLimit": spec.retries,
            "activeDeadlineSeconds": spec.timeout,
            "ttlSecondsAfterFinished": KEEP_FINISHED_SECONDS,
            # An evicted or preempted pod is the cluster's doing: run it again without using up
            # one of the step's retries.
            "podFailurePolicy": {
                "rules": [
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
                ]
            },
            "template": {"metadata": metadata, "spec": pod_spec},
        },
    }
