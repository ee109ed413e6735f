"""A workflow version on Argo: one WorkflowTemplate with a DAG of its steps; chains as Sensors (pure).

Contract:
- `dag_template(team, pipeline, version, steps, run_parameters, timeout,
  retries, cluster, settings)` is the version's `WorkflowTemplate` (named
  and labelled as a single-notebook version's, `<team>-<pipeline>-v<N>`),
  built with hera, whose entrypoint is a DAG with one task per step
  (`task_name`: the step's name with `-` for `_`, as Argo names allow):
  - a notebook step is a pod from its own resolved profile, built by the
    same functions as a single-notebook version's (`team_run_pod`:
    `profiles.pod_override` and the team's folder; the notebook container's
    env, resources, non-root security context; the run-pod labels the
    chart's NetworkPolicies select), with the profile's node selector,
    tolerations, volumes and service account on its own template; its
    `activeDeadlineSeconds` and `retryStrategy` are the step's, else
    `timeout` and `retries` (the deployment's). Its papermill parameters
    are the Workflow parameter `<step>-parameters` (JSON; `run_parameters`
    as `workflow.declared_run_parameters` names them, `<step>.<name>`, else
    the spec's values), and, for each parameter `<upstream>_<output>` the
    notebook declares where `<upstream>` is an ancestor notebook step, that
    step's recorded output when it recorded one.
  - an `approval` step is a `suspend` template with `duration` (the gate's
    timeout) and an output parameter `decision` supplied on resume
    (`approved` or `rejected`), defaulting to `rejected`: a gate nobody
    decides resumes at its timeout as rejected (Argo fills a supplied output's
    default at the timeout from 3.5.14 and 3.6.2 on; 3.6.0 and 3.6.1 leave it
    unset). It holds no pod.
  - `depends` and `when` follow `pipelines.dag`: without a status condition
    a step needs every dependency Succeeded (a gate also `decision ==
    approved`); a status condition replaces that with "every dependency
    finished" and its own test (`x failed`: Failed or Errored; `x rejected`:
    the gate resumed without approval). An output condition is evaluated by
    the upstream step's own container after its notebook (the runner's
    `--conditions`, dag.py's comparison rules) into an output parameter
    `when-<task>-<i>` (`true`/`false`, default `false`) that the task's `when`
    tests, so a missing output or an incomparable value skips the step as
    dag.py does, never an expression error. The DAG has `failFast: false`,
    so a step handling an upstream failure still runs.
  - every step mounts the run's folder, a volume claimed per Workflow
    (`volumeClaimTemplates`: `settings.run_folder_*`), at `RUN_FOLDER` (the
    docker backend's path too), named by `ANALYSIS_HUB_RUN_FOLDER`. A step's recorded outputs are the output
    parameter `outputs` (JSON, `{}` when none) and a file in that folder
    (`.analysis-hub/outputs/<step>.json`) that later steps' runners read.
  - the Workflow's own deadline is `timeout` plus the gates' timeouts: a
    run's timeout counts its steps, not the time a person takes to decide.
  Argo's phase of such a Workflow is not the run's status (a rejected gate
  ends Succeeded): the service reads the steps' nodes (`dag.run_status`).
"""

from __future__ import annotations

import json

from hera.workflows import Parameter, WorkflowTemplate
from hera.workflows import models as m

from ...pipelines.dag import APPROVAL, ancestors
from ...pipelines.specs import RUN_FOLDER_ENV, stored_profile
from ...pipelines.workflow import WorkflowStep, dag_steps
from .profiles import ClusterFacts
from .workflows import (
    KEEP_FINISHED_SECONDS,
    LABEL_PREFIX,
    PIPELINE_RUN_LABEL,
    RUN_FOLDER,
    RUN_VOLUME,
    WorkflowSettings,
    container_resources,
    notebook_env,
    notebook_security_context,
    pod_labels,
    pod_security_context,
    run_folder_claim_spec,
    runner_source,
    step_artifact_urls,
    team_run_pod,
    version_annotations,
    version_labels,
    version_template_name,
)

ENTRYPOINT = "workflow"
OUTPUTS = "outputs"
OUTPUTS_FOLDER = f"{RUN_FOLDER}/.analysis-hub/outputs"  # <step>.json, for later steps' parameters
RESULTS = "/tmp/analysis-hub"  # in the step's container: what Argo reads its output parameters from
DECISION, APPROVED, REJECTED = "decision", "approved", "rejected"
# What a dependency may be for a step whose status condition replaced the default rule.
FINISHED = ("Succeeded", "Failed", "Errored", "Skipped", "Omitted")


def task_name(step: str) -> str:
    return step.replace("_", "-")


def parameters_name(step: str) -> str:
    """The Workflow parameter holding a notebook step's papermill parameters (JSON)."""
    return f"{step}-parameters"


def dag_template(
    team: str,
    pipeline: str,
    version_number: int,
    steps: list[WorkflowStep],
    run_parameters: dict,
    timeout: int,
    retries: int,
    cluster: ClusterFacts,
    settings: WorkflowSettings,
) -> dict:
    shapes = {s.name: s for s in dag_steps(steps)}
    kinds = {s.name: s.kind for s in steps}
    tasks, conditions_on = [], {s.name: [] for s in steps}
    for step in steps:
        depends, when = _depends_and_when(shapes[step.name], kinds, conditions_on)
        prefix = "gate" if step.kind == APPROVAL else "step"
        tasks.append(
            m.DAGTask(
                name=task_name(step.name),
                template=f"{prefix}-{task_name(step.name)}",
                depends=depends or None,
                when=when or None,
            )
        )
    templates = [m.Template(name=ENTRYPOINT, dag=m.DAGTemplate(tasks=tasks, fail_fast=False))]
    arguments = []
    for step in steps:
        if step.kind == APPROVAL:
            templates.append(_gate(step))
            continue
        values = {
            name: run_parameters.get(
                f"{step.name}.{name}", step.parameters.get(name, declared.get("default"))
            )
            for name, declared in step.declared.items()
        }
        arguments.append(Parameter(name=parameters_name(step.name), value=_argo_safe(json.dumps(values))))
        pod = team_run_pod(stored_profile(step), team, cluster)
        urls = step_artifact_urls(team, pipeline, version_number, "{{workflow.name}}", settings, step.name)
        args = [urls.input, urls.output, urls.log, step.kernel, _workflow_parameter(step)]
        args += _runner_options(step, _upstream_wiring(step, steps, shapes), conditions_on[step.name])
        step_timeout = step.timeout if step.timeout is not None else timeout
        step_retries = step.retries if step.retries is not None else retries
        templates.append(
            _notebook(step, pod, args, conditions_on[step.name], step_timeout, step_retries, settings)
        )
    waiting = sum(s.timeout or 0 for s in steps if s.kind == APPROVAL)
    template = WorkflowTemplate(
        name=version_template_name(team, pipeline, version_number),
        labels=version_labels(team, pipeline, version_number),
        annotations=version_annotations(team, pipeline),
        entrypoint=ENTRYPOINT,
        arguments=arguments or None,
        active_deadline_seconds=timeout + waiting,
        templates=templates,
        volume_claim_templates=[_run_folder_claim(settings)],
        # Deleted when the run ends, whatever its end: the folder is the run's scratch space.
        volume_claim_gc=m.VolumeClaimGC(strategy="OnWorkflowCompletion"),
        automount_service_account_token=False,
        executor=m.ExecutorConfig(service_account_name=settings.executor_service_account),
        pod_metadata=m.Metadata(labels=dict(PIPELINE_RUN_LABEL)),
        ttl_strategy=m.TTLStrategy(seconds_after_completion=KEEP_FINISHED_SECONDS),
    )
    return template.to_dict()


def _runner_options(step: WorkflowStep, wiring: dict, conditions: list) -> list[str]:
    """The runner's options for a workflow step (see notebook_runner.py)."""
    outputs = [f"{RESULTS}/{OUTPUTS}.json", f"{OUTPUTS_FOLDER}/{step.name}.json"]
    options = [f"--outputs={json.dumps(outputs)}"]
    if wiring:
        options.append(f"--upstream={_argo_safe(json.dumps(wiring))}")
    if conditions:
        tests = [[f"{RESULTS}/{name}", c.output, c.op, c.value] for name, c in conditions]
        options.append(f"--conditions={_argo_safe(json.dumps(tests))}")
    return options


def _notebook(
    step: WorkflowStep,
    pod: dict,
    args: list[str],
    conditions: list,
    timeout: int,
    retries: int,
    settings: WorkflowSettings,
) -> m.Template:
    """A notebook step's template: its profile's pod (as a single-notebook version's) with the run
    folder, its own deadline and retries, and its outputs and condition results as parameters."""
    run_folder = m.VolumeMount(name=RUN_VOLUME, mount_path=RUN_FOLDER)
    return m.Template(
        name=f"step-{task_name(step.name)}",
        metadata=m.Metadata(labels=pod_labels(pod)),
        container=m.Container(
            name="main",
            image=pod["image"],
            command=["python", "-c", runner_source()],
            args=args,
            env=notebook_env(pod, settings, {RUN_FOLDER_ENV: RUN_FOLDER}),
            resources=container_resources(pod),
            volume_mounts=[*(m.VolumeMount(**v) for v in pod.get("volume_mounts") or []), run_folder],
            security_context=notebook_security_context(pod),
        ),
        node_selector=pod.get("node_selector") or None,
        tolerations=[m.Toleration(**t) for t in pod.get("tolerations") or []] or None,
        volumes=[m.Volume(**v) for v in pod.get("volumes") or []] or None,
        security_context=pod_security_context(pod),
        # The notebook gets an API token only where its profile needs one (a Spark driver).
        service_account_name=pod.get("service_account"),
        automount_service_account_token=True if pod.get("automount_service_account_token") else None,
        active_deadline_seconds=m.IntOrString(timeout),
        retry_strategy=m.RetryStrategy(limit=m.IntOrString(retries), retry_policy="Always")
        if retries
        else None,
        outputs=m.Outputs(
            parameters=[
                _from_file(OUTPUTS, f"{RESULTS}/{OUTPUTS}.json", "{}"),
                *(_from_file(name, f"{RESULTS}/{name}", "false") for name, _ in conditions),
            ]
        ),
    )


def _depends_and_when(shape, kinds: dict, conditions_on: dict) -> tuple[str, str]:
    """Argo's `depends` and `when` for one step, with dag.py's rules (see the contract); output
    conditions are registered on their upstream step in `conditions_on`."""
    depends, when = [], []
    if not any(c.status for c in shape.when):
        for dep in shape.depends_on:
            depends.append(f"{task_name(dep)}.Succeeded")
            if kinds[dep] == APPROVAL:
                when.append(_decision(dep, "=="))
    else:
        for dep in shape.depends_on:
            depends.append("(" + " || ".join(f"{task_name(dep)}.{p}" for p in FINISHED) + ")")
    for index, condition in enumerate(shape.when):
        task, gate = task_name(condition.step), kinds[condition.step] == APPROVAL
        if condition.status == "succeeded":
            depends.append(f"{task}.Succeeded")
            if gate:
                when.append(_decision(condition.step, "=="))
        elif condition.status == "failed":
            depends.append(f"({task}.Failed || {task}.Errored)")
        elif condition.status == "rejected" or gate:
            # Only a gate is rejected; a gate records no outputs: otherwise it never holds.
            depends.append(f"{task}.Succeeded")
            when.append(
                _decision(condition.step, "!=") if condition.status == "rejected" and gate else "false"
            )
        else:
            name = f"when-{task_name(shape.name)}-{index}"
            conditions_on[condition.step].append((name, condition))
            if f"{task}.Succeeded" not in depends:  # it ran: its outputs parameter is there
                depends.append(f"({task}.Succeeded || {task}.Failed)")
            when.append(f"{{{{tasks.{task}.outputs.parameters.{name}}}}} == true")
    return " && ".join(dict.fromkeys(depends)), " && ".join(dict.fromkeys(when))


def _decision(step: str, op: str) -> str:
    return f"{{{{tasks.{task_name(step)}.outputs.parameters.{DECISION}}}}} {op} {APPROVED}"


def _upstream_wiring(step: WorkflowStep, steps: list[WorkflowStep], shapes: dict) -> dict:
    """Declared parameter `<upstream>_<output>` -> [that step's outputs file, output], for ancestor
    notebook steps (the longest matching step name wins: `a_b_c` is `a_b`'s `c` before `a`'s `b_c`)."""
    upstream = ancestors(list(shapes.values()), step.name)
    notebooks = sorted((s.name for s in steps if s.name in upstream and s.kind != APPROVAL), key=len)
    wiring = {}
    for parameter in step.declared:
        for name in reversed(notebooks):
            if parameter.startswith(f"{name}_") and len(parameter) > len(name) + 1:
                wiring[parameter] = [f"{OUTPUTS_FOLDER}/{name}.json", parameter[len(name) + 1 :]]
                break
    return wiring


def _gate(step: WorkflowStep) -> m.Template:
    return m.Template(
        name=f"gate-{task_name(step.name)}",
        # Shown in Argo's UI; the service decides who may approve.
        metadata=m.Metadata(annotations={LABEL_PREFIX + "approvers": step.approvers or ""}),
        suspend=m.SuspendTemplate(duration=str(step.timeout)),
        outputs=m.Outputs(
            parameters=[
                m.Parameter(
                    name=DECISION,
                    value_from=m.ValueFrom(supplied=m.SuppliedValueFrom(), default=REJECTED),
                    enum=[APPROVED, REJECTED],
                    description="approved or rejected by a member of the approvers; rejected at the timeout",
                )
            ]
        ),
    )


def _from_file(name: str, path: str, default: str) -> m.Parameter:
    return m.Parameter(name=name, value_from=m.ValueFrom(path=path, default=default))


def _workflow_parameter(step: WorkflowStep) -> str:
    return "{{workflow.parameters." + parameters_name(step.name) + "}}"


def _run_folder_claim(settings: WorkflowSettings) -> m.PersistentVolumeClaim:
    return m.PersistentVolumeClaim(
        metadata=m.ObjectMeta(name=RUN_VOLUME), spec=run_folder_claim_spec(settings)
    )


def _argo_safe(text: str) -> str:
    """JSON text without two opening braces in a row, which Argo would take for an expression:
    json.dumps never writes them outside strings, and inside a string `\\u007b` is the same `{`."""
    return text.replace("{{", "{\\u007b")
