"""Pipelines on Kubernetes: Argo Workflows objects, built with hera (pure).

Contract: `argo_manifests(team, pipeline, version, deployment, pod, output_url)`
returns `[WorkflowTemplate, CronWorkflow]` (the second only for a cron
trigger) as plain dicts ready for `kubectl apply`. `pod` is the
`kubespawner_override` that the version's profile produces for KubeSpawner,
so a pipeline runs with exactly the image, resources, GPU, node selector,
tolerations, env and volumes (Hadoop configuration included) of the servers
its notebook was written in. The notebook travels inside the template as a raw
input artifact; papermill writes the output notebook to object storage
(`output_url`, e.g. `s3://bucket/runs`) through its own I/O handlers.
"""

from __future__ import annotations

import json

from hera.workflows import Container, CronWorkflow, Parameter, RawArtifact, RetryStrategy, WorkflowTemplate
from hera.workflows import models as m

NOTEBOOK_PATH = "/home/jovyan/pipeline/input.ipynb"


def _quantity_bytes(value) -> str | None:
    return None if value is None else str(int(value)) if isinstance(value, int | float) else str(value)


def container_resources(pod: dict) -> m.ResourceRequirements:
    requests = {"cpu": pod.get("cpu_guarantee"), "memory": _quantity_bytes(pod.get("mem_guarantee"))}
    limits = {"cpu": pod.get("cpu_limit"), "memory": _quantity_bytes(pod.get("mem_limit"))}
    requests.update(pod.get("extra_resource_guarantees") or {})
    limits.update(pod.get("extra_resource_limits") or {})
    return m.ResourceRequirements(
        requests={k: m.Quantity(str(v)) for k, v in requests.items() if v is not None} or None,
        limits={k: m.Quantity(str(v)) for k, v in limits.items() if v is not None} or None,
    )


def argo_manifests(
    team: str, pipeline: str, version: dict, deployment: dict, pod: dict, output_url: str
) -> list[dict]:
    name = f"{team}-{pipeline}"
    labels = {
        "analysis-hub/team": team,
        "analysis-hub/pipeline": pipeline,
        "analysis-hub/version": str(version["number"]),
    }
    output = f"{output_url.rstrip('/')}/{team}/{pipeline}/{{{{workflow.name}}}}/output.ipynb"
    common = {
        "entrypoint": "papermill",
        "labels": labels,
        "node_selector": pod.get("node_selector") or None,
        "tolerations": [m.Toleration(**t) for t in pod.get("tolerations") or []] or None,
        "volumes": [m.Volume(**v) for v in pod.get("volumes") or []] or None,
        "security_context": m.PodSecurityContext(
            run_as_user=pod.get("uid", 1000), fs_group=pod.get("fs_gid", 100)
        ),
        "automount_service_account_token": bool(pod.get("automount_service_account_token", False)),
        "active_deadline_seconds": deployment["timeout"],
        "retry_strategy": RetryStrategy(limit=deployment["retries"]) if deployment["retries"] else None,
        "arguments": Parameter(name="parameters", value=json.dumps(deployment.get("parameters") or {})),
    }
    with WorkflowTemplate(name=name, **common) as template:
        Container(
            name="papermill",
            image=pod["image"],
            command=["python", "-m", "papermill", NOTEBOOK_PATH, output],
            args=[
                "--parameters_yaml",
                "{{workflow.parameters.parameters}}",
                "--kernel",
                version["kernel"],
                "--log-output",
            ],
            env=[m.EnvVar(name=k, value=str(v)) for k, v in sorted((pod.get("environment") or {}).items())],
            resources=container_resources(pod),
            volume_mounts=[m.VolumeMount(**v) for v in pod.get("volume_mounts") or []] or None,
            security_context=m.SecurityContext(
                run_as_user=pod.get("uid", 1000),
                run_as_non_root=True,
                allow_privilege_escalation=False,
                capabilities=m.Capabilities(drop=["ALL"]),
            ),
            inputs=[RawArtifact(name="notebook", path=NOTEBOOK_PATH, data=version["notebook"])],
        )
    manifests = [template.to_dict()]
    if deployment["trigger"] == "cron":
        cron = CronWorkflow(
            name=name,
            labels=labels,
            schedules=[deployment["schedule"]],
            timezone=deployment["timezone"],
            concurrency_policy="Forbid" if deployment["concurrency"] == "forbid" else "Allow",
            cron_suspend=bool(deployment.get("paused")),
            workflow_template_ref=m.WorkflowTemplateRef(name=name),
        )
        manifests.append(cron.to_dict())
    return manifests
