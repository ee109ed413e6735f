"""`GET .../argo`: the active version's Argo `WorkflowTemplate`, as the Kubernetes executor stores it.

Contract: `argo_manifests(team, pipeline, version, deployment, pod, output_url)`
returns `[WorkflowTemplate]` as a plain dict ready for `kubectl apply`, built
by `backends.kubernetes.workflows.workflow_template` from `pod` (the
version's `pod_override`, the KubeSpawner profile's own settings). The
notebook is not inside it: at each run the executor uploads the version's
notebook to `<output_url>/<team>/<pipeline>/v<N>/input.ipynb`, and submits a
`Workflow` that references this template.

No CronWorkflow is exported any more: the pipelines service submits a
Workflow at cron time (one scheduler for every backend), and a CronWorkflow
applied beside it would run every schedule twice.
"""

from __future__ import annotations

from ..backends.kubernetes.workflows import WorkflowSettings, workflow_template
from ..settings import KubernetesSettings
from .specs import RunSpec


def argo_manifests(
    team: str, pipeline: str, version: dict, deployment: dict, pod: dict, output_url: str
) -> list[dict]:
    spec = RunSpec(
        run_id=0,
        team=team,
        pipeline=pipeline,
        version=version["number"],
        image=pod["image"],
        kernel=version["kernel"],
        parameters=dict(deployment.get("parameters") or {}),
        timeout=deployment["timeout"],
    )
    settings = WorkflowSettings(output_url, KubernetesSettings().workflow_service_account)
    return [workflow_template(spec, pod, settings)]
