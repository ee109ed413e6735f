"""Pipelines on Argo Workflows: the objects the Kubernetes executor sends, and what it reads back (pure).

Contract:
- `workflow_template(spec, pod, settings)` is a version's
  `WorkflowTemplate` (built with hera): one container step that runs
  `notebook_runner.py` with papermill in the profile's image, with the pod
  settings `pod` of the same translation as the KubeSpawner profile
  (`version_pod(spec, cluster)`, i.e. `profiles.pod_override`: resources,
  GPU limit, node selector, the chart's and the profile's tolerations, env,
  /dev/shm and Hadoop volumes, the Spark service account), non-root and
  without an API token in the notebook's container, and the team's folder
  (its claim at /home/jovyan/teams/<team>, the path its members' servers
  have) when the team has one. Its name and labels say team, pipeline and version.
  A workflow's step (`spec.step`) has its own template, whose notebook
  container also mounts the run's shared folder at `RUN_FOLDER` (named by
  `ANALYSIS_HUB_RUN_FOLDER`); each run's Workflow supplies the volume.
- `workflow(spec, name, pod)` is one run: a `Workflow` that references
  that template (`workflowTemplateRef`), with the run's parameters, its
  `activeDeadlineSeconds` (the deployment's timeout) and a `retryStrategy`
  when the run may be retried, labelled with team, pipeline, version and
  run id (always valid label values; the exact names are annotations); its
  pods also carry `analysis-hub/pipeline-run: "true"`, which the chart's
  NetworkPolicy for run pods selects. A workflow step's Workflow names its
  run's claim as the volume `RUN_VOLUME`.
- `run_folder_claim(spec, settings, copy_of)`: a workflow run's shared
  folder, one `PersistentVolumeClaim` per run (`run_folder_claim_name`) that
  every step's Workflow mounts; a repair's starts as a clone of the repaired
  run's claim (`dataSource`: CSI volume cloning, same storage class).
- `artifact_urls(spec, name, settings)`: where a run's files live in the
  artifact store. The version's notebook is `<output_url>/<team>/<pipeline>/
  v<N>/input.ipynb` (the executor uploads it), a run's output notebook and log
  `<output_url>/<team>/<pipeline>/runs/<workflow name>/{output.ipynb,log.txt}`,
  written by papermill's own handlers from the pod.
- `workflow_result(workflow)` maps a Workflow's status to a run state:
  None while it runs; Succeeded -> succeeded; a stop (`spec.shutdown`, or
  Argo's "Stopped with strategy") -> cancelled; a deadline (the pod's or the
  workflow's) -> timed_out; any other Failed or Error -> failed, with Argo's
  message and the notebook container's exit code.
- No CronWorkflow: the pipelines service is the one scheduler of every
  backend (concurrency, approvals and the audit stay in one place) and
  submits a Workflow at cron time.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from importlib import resources

from hera.workflows import Container, Parameter, RetryStrategy, Workflow, WorkflowTemplate
from hera.workflows import models as m

from ...catalog import Profile, ResolvedProfile, Resources
from ...pipelines.executor import INPUT, LOG, OUTPUT
from ...pipelines.specs import RUN_FOLDER_ENV, RunSpec
from .profiles import HOME, ClusterFacts, pod_override, team_volumes

GROUP, VERSION = "argoproj.io", "v1alpha1"
STEP = "notebook"
PARAMETERS = "parameters"
PARAMETERS_VALUE = "{{workflow.parameters." + PARAMETERS + "}}"  # Argo substitutes it in the pod
LABEL_PREFIX = "analysis-hub/"
# On every run's pods: the chart's NetworkPolicy for pipeline runs selects them by it.
PIPELINE_RUN_LABEL = {LABEL_PREFIX + "pipeline-run": "true"}
# The keys of the artifact store's credentials Secret (Argo's artifact repository uses the same).
SECRET_KEYS = {"AWS_ACCESS_KEY_ID": "accesskey", "AWS_SECRET_ACCESS_KEY": "secretkey"}
# A finished Workflow (and its pods) stays this long for `argo`/kubectl; the run's record and
# files are the service's and the artifact store's.
KEEP_FINISHED_SECONDS = 7 * 86400
FINISHED_PHASES = ("Succeeded", "Failed", "Error")
RUN_FOLDER = f"{HOME}/run-folder"  # a workflow run's shared folder in every step; docker's path too
RUN_VOLUME = "run-folder"
RUN_FOLDER_LABEL = {LABEL_PREFIX + "run-folder": "true"}  # on every run folder's claim
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_DEADLINE = re.compile(r"exceeded its deadline|longer than the specified deadline|DeadlineExceeded", re.I)
_STOPPED = re.compile(r"^Stopped with strategy|shutdown with strategy", re.I)


@dataclass(frozen=True)
class WorkflowSettings:
    """What the cluster gives pipeline runs, from settings (`pipelines.*`, `kubernetes.*`)."""

    output_url: str  # s3://bucket[/prefix]
    executor_service_account: str  # Argo's own containers' identity; the notebook's has no token
    s3_endpoint_url: str | None = None  # an S3-compatible store's URL (MinIO, Ceph); None: AWS
    s3_credentials_secret: str | None = None  # a Secret with keys accesskey and secretkey
    s3_region: str | None = None
    # A workflow run's shared folder: a volume claimed per run. ReadWriteOnce suits steps that
    # run one after another (the volume follows them from node to node); steps in parallel on
    # different nodes need ReadWriteMany.
    run_folder_size: str = "10Gi"
    run_folder_storage_class: str | None = None  # None: the cluster's default
    run_folder_access_mode: str = "ReadWriteOnce"


@dataclass(frozen=True)
class ArtifactUrls:
    input: str
    output: str
    log: str


@dataclass(frozen=True)
class WorkflowResult:
    status: str  # succeeded | failed | timed_out | cancelled
    exit_code: int | None
    reason: str
    messages: tuple[str, ...]  # Argo's, for the log when the pod never wrote one


def object_name(base: str, suffix: str = "", limit: int = 63) -> str:
    """A DNS-1123 label of at most `limit` characters (Argo puts Workflow names in pod labels)."""
    clean = re.sub(r"[^a-z0-9-]+", "-", base.lower()).strip("-") or "x"
    tail = f"-{suffix}" if suffix else ""
    if len(clean) + len(tail) > limit:
        digest = hashlib.sha256(base.encode()).hexdigest()[:8]
        clean = f"{clean[: limit - len(tail) - 9].rstrip('-')}-{digest}"
    return clean + tail


def label_value(text: str) -> str:
    """`text` when it is a valid label value, else a valid one that still tells values apart."""
    if len(text) <= 63 and _LABEL_VALUE.match(text):
        return text
    clean = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:52].strip("-_.")
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return f"{clean}-{digest}" if clean else digest


def template_name(spec: RunSpec) -> str:
    step = f"-{spec.step}" if spec.step else ""  # a workflow's steps each have their own pod
    return object_name(f"{spec.team}-{spec.pipeline}-v{spec.version}{step}")


def version_template_name(team: str, pipeline: str, version: int) -> str:
    """A version's one template; a workflow version's is its DAG (`workflow_dag.dag_template`)."""
    return object_name(f"{team}-{pipeline}-v{version}")


def workflow_name(spec: RunSpec, nonce: str) -> str:
    step = f"-{spec.step}" if spec.step else ""
    return object_name(f"{spec.team}-{spec.pipeline}-{spec.run_id}{step}", nonce)


def run_labels(spec: RunSpec, with_run: bool = True) -> dict[str, str]:
    labels = version_labels(spec.team, spec.pipeline, spec.version)
    if with_run:
        labels[LABEL_PREFIX + "run"] = label_value(str(spec.run_id))
    return labels


def version_labels(team: str, pipeline: str, version: int) -> dict[str, str]:
    labels = {"team": team, "pipeline": pipeline, "version": str(version)}
    return {LABEL_PREFIX + k: label_value(v) for k, v in labels.items()}


def run_selector(run_id: int) -> str:
    return f"{LABEL_PREFIX}run={run_id}"


def _annotations(spec: RunSpec) -> dict[str, str]:
    return version_annotations(spec.team, spec.pipeline)


def version_annotations(team: str, pipeline: str) -> dict[str, str]:
    """The exact names, where labels may have had to shorten them."""
    return {LABEL_PREFIX + "team": team, LABEL_PREFIX + "pipeline": pipeline}


def artifact_urls(spec: RunSpec, workflow: str, settings: WorkflowSettings) -> ArtifactUrls:
    return step_artifact_urls(spec.team, spec.pipeline, spec.version, workflow, settings, spec.step)


def step_artifact_urls(
    team: str, pipeline: str, version: int, workflow: str, settings: WorkflowSettings, step: str | None = None
) -> ArtifactUrls:
    """A version's notebook and a run's files; a workflow step's in a folder `steps/<step>/` of each."""
    base = f"{settings.output_url.rstrip('/')}/{team}/{pipeline}"
    below = f"/steps/{step}" if step else ""
    run = f"{base}/runs/{workflow}{below}"
    return ArtifactUrls(f"{base}/v{version}{below}/{INPUT}", f"{run}/{OUTPUT}", f"{run}/{LOG}")


def runner_source() -> str:
    return resources.files(__package__).joinpath("notebook_runner.py").read_text()


def profile_of(spec: RunSpec) -> ResolvedProfile:
    """The version's resolved profile (`spec.profile`), or one made of the spec's own limits."""
    if spec.profile is not None:
        return spec.profile
    return ResolvedProfile(
        profile=Profile(slug=spec.image, display_name=spec.image, image=spec.image),
        choices={},
        resources=Resources(None, spec.cpu_limit, None, spec.memory_limit, spec.gpus),
        env=dict(spec.env),
        node_selector={},
        tolerations=[],
    )


def _quantity(value) -> str | None:
    return None if value is None else str(int(value)) if isinstance(value, int | float) else str(value)


def container_resources(pod: dict) -> m.ResourceRequirements:
    requests = {"cpu": pod.get("cpu_guarantee"), "memory": _quantity(pod.get("mem_guarantee"))}
    limits = {"cpu": pod.get("cpu_limit"), "memory": _quantity(pod.get("mem_limit"))}
    requests.update(pod.get("extra_resource_guarantees") or {})
    limits.update(pod.get("extra_resource_limits") or {})
    return m.ResourceRequirements(
        requests={k: m.Quantity(str(v)) for k, v in requests.items() if v is not None} or None,
        limits={k: m.Quantity(str(v)) for k, v in limits.items() if v is not None} or None,
    )


def version_pod(spec: RunSpec, cluster: ClusterFacts) -> dict:
    return team_run_pod(profile_of(spec), spec.team, cluster)


def team_run_pod(resolved: ResolvedProfile, team: str, cluster: ClusterFacts) -> dict:
    """A run pod's settings: the profile's (`pod_override`) and its team's folder."""
    pod = pod_override(resolved, cluster)
    # A run is its team's: that team's folder only, where a member's server has it.
    volumes, mounts = team_volumes(tuple(f for f in cluster.teams if f.team == team), cluster)
    if volumes:
        pod = {
            **pod,
            "volumes": [*pod["volumes"], *volumes],
            "volume_mounts": [*pod["volume_mounts"], *mounts],
        }
    return pod


def workflow_template(spec: RunSpec, pod: dict, settings: WorkflowSettings) -> dict:
    # The template's URLs: the version's notebook, and the run's files under its Workflow's name.
    urls = artifact_urls(spec, "{{workflow.name}}", settings)
    with WorkflowTemplate(
        name=template_name(spec),
        labels=run_labels(spec, with_run=False),
        annotations=_annotations(spec),
        entrypoint=STEP,
        arguments=Parameter(name=PARAMETERS, value=json.dumps(spec.parameters)),
        active_deadline_seconds=spec.timeout,
        node_selector=pod.get("node_selector") or None,
        tolerations=[m.Toleration(**t) for t in pod.get("tolerations") or []] or None,
        volumes=[m.Volume(**v) for v in pod.get("volumes") or []] or None,
        security_context=pod_security_context(pod),
        # The notebook's container gets no API token unless the profile needs one (Spark on
        # Kubernetes); Argo's own containers then need an identity of their own.
        service_account_name=pod.get("service_account"),
        automount_service_account_token=bool(pod.get("automount_service_account_token", False)),
        executor=m.ExecutorConfig(service_account_name=settings.executor_service_account),
        pod_metadata=m.Metadata(labels=pod_labels(pod)),
        ttl_strategy=m.TTLStrategy(seconds_after_completion=KEEP_FINISHED_SECONDS),
    ) as template:
        mounts = [m.VolumeMount(**v) for v in pod.get("volume_mounts") or []]
        shared = {}
        if spec.step:  # a workflow's step: the run's folder, whose claim each run's Workflow names
            mounts.append(m.VolumeMount(name=RUN_VOLUME, mount_path=RUN_FOLDER))
            shared = {RUN_FOLDER_ENV: RUN_FOLDER}
        Container(
            name=STEP,
            image=pod["image"],
            command=["python", "-c", runner_source()],
            args=[urls.input, urls.output, urls.log, spec.kernel, PARAMETERS_VALUE],
            env=notebook_env(pod, settings, shared),
            resources=container_resources(pod),
            volume_mounts=mounts or None,
            security_context=notebook_security_context(pod),
        )
    return template.to_dict()


def notebook_env(pod: dict, settings: WorkflowSettings, extra: dict | None = None) -> list[m.EnvVar]:
    """The notebook container's environment: the profile's, `extra`, and the artifact store's."""
    env = {**pod.get("environment", {}), **(extra or {}), "PYTHONUNBUFFERED": "1"}
    if settings.s3_endpoint_url:
        env["BOTO3_ENDPOINT_URL"] = settings.s3_endpoint_url  # papermill's S3 handler reads it
    if settings.s3_region:
        env["AWS_DEFAULT_REGION"] = settings.s3_region
    env_vars = [m.EnvVar(name=k, value=str(v)) for k, v in sorted(env.items())]
    if settings.s3_credentials_secret:
        env_vars += [
            m.EnvVar(
                name=name,
                value_from=m.EnvVarSource(
                    secret_key_ref=m.SecretKeySelector(name=settings.s3_credentials_secret, key=key)
                ),
            )
            for name, key in SECRET_KEYS.items()
        ]
    return env_vars


def pod_security_context(pod: dict) -> m.PodSecurityContext:
    # jovyan's group owns the volumes (the run folder, the team's), so the notebook may write them.
    return m.PodSecurityContext(run_as_user=pod.get("uid", 1000), fs_group=100)


def notebook_security_context(pod: dict) -> m.SecurityContext:
    return m.SecurityContext(
        run_as_user=pod.get("uid", 1000),
        run_as_non_root=True,
        allow_privilege_escalation=False,
        capabilities=m.Capabilities(drop=["ALL"]),
    )


def pod_labels(pod: dict) -> dict[str, str]:
    """Every run pod's labels: a pipeline run's, and the profile's own (the Spark driver's)."""
    return {**PIPELINE_RUN_LABEL, **(pod.get("extra_labels") or {})}


def workflow(spec: RunSpec, name: str, pod: dict) -> dict:
    labels = run_labels(spec)
    retry = RetryStrategy(limit=spec.retries, retry_policy="Always") if spec.retries else None
    volumes = None
    if spec.step:
        # The run's folder, and the template's volumes again: Argo merges a Workflow's volumes
        # with its template's by name, and a list that replaced them would still be whole.
        claim = m.PersistentVolumeClaimVolumeSource(
            claim_name=run_folder_claim_name(spec.team, spec.pipeline, spec.run_id)
        )
        volumes = [
            *(m.Volume(**v) for v in pod.get("volumes") or []),
            m.Volume(name=RUN_VOLUME, persistent_volume_claim=claim),
        ]
    return Workflow(
        name=name,
        labels=labels,
        annotations=_annotations(spec),
        workflow_template_ref=m.WorkflowTemplateRef(name=template_name(spec)),
        arguments=Parameter(name=PARAMETERS, value=json.dumps(spec.parameters)),
        active_deadline_seconds=spec.timeout,
        retry_strategy=retry,
        volumes=volumes,
        # The pods carry the run's labels too (kubectl get pods -l analysis-hub/team=...), and the
        # template's pod labels again, whether Argo merges the two podMetadata or takes this one.
        pod_metadata=m.Metadata(labels={**pod_labels(pod), **labels}),
    ).to_dict()


def run_folder_claim_name(team: str, pipeline: str, run_id: int) -> str:
    return object_name(f"{team}-{pipeline}-{run_id}", "run-folder")


def run_folder_claim_spec(
    settings: WorkflowSettings, copy_of: str | None = None
) -> m.PersistentVolumeClaimSpec:
    """The run folder's volume (`pipelines.run_folder_*`), a clone of the claim `copy_of` if given."""
    source = m.TypedLocalObjectReference(kind="PersistentVolumeClaim", name=copy_of) if copy_of else None
    return m.PersistentVolumeClaimSpec(
        access_modes=[settings.run_folder_access_mode],
        storage_class_name=settings.run_folder_storage_class,
        resources=m.VolumeResourceRequirements(requests={"storage": m.Quantity(settings.run_folder_size)}),
        data_source=source,
    )


def run_folder_claim(spec: RunSpec, settings: WorkflowSettings, copy_of: str | None = None) -> dict:
    """A workflow run's shared folder: the claim its steps' Workflows mount (`run_folder_claim_name`)."""
    claim = m.PersistentVolumeClaim(
        api_version="v1",
        kind="PersistentVolumeClaim",
        metadata=m.ObjectMeta(
            name=run_folder_claim_name(spec.team, spec.pipeline, spec.run_id),
            labels={**run_labels(spec), **RUN_FOLDER_LABEL},
            annotations=_annotations(spec),
        ),
        spec=run_folder_claim_spec(settings, copy_of),
    )
    return claim.model_dump(mode="json", by_alias=True, exclude_none=True)


def workflow_result(wf: dict) -> WorkflowResult | None:
    status = wf.get("status") or {}
    phase = status.get("phase") or ""
    if phase not in FINISHED_PHASES:
        return None
    pods = sorted(
        (n for n in (status.get("nodes") or {}).values() if n.get("type") == "Pod"),
        key=lambda n: n.get("finishedAt") or "",
    )
    messages = tuple(
        dict.fromkeys(x for x in [*(n.get("message") for n in pods), status.get("message")] if x)
    )
    code = _exit_code(pods[-1]) if pods else None
    if phase == "Succeeded":
        return WorkflowResult("succeeded", 0, "", messages)
    if (wf.get("spec") or {}).get("shutdown") or any(_STOPPED.search(x) for x in messages):
        return WorkflowResult("cancelled", code, "cancelled: the Workflow was stopped", messages)
    if any(_DEADLINE.search(x) for x in messages):
        return WorkflowResult("timed_out", code, messages[0], messages)
    reason = messages[0] if messages else f"the Workflow ended in phase {phase}"
    return WorkflowResult("failed", code, reason, messages)


def out_of_memory(result: WorkflowResult) -> bool:
    return any("OOMKilled" in x for x in result.messages)


def _exit_code(node: dict) -> int | None:
    try:
        return int((node.get("outputs") or {}).get("exitCode"))
    except (TypeError, ValueError):
        return None
