"""A run's steps: what each gets (pure), and where each step's files live.

Contract:
- `version_steps(version)` is a version's steps: a workflow's from its
  `pipeline.yaml` (`workflow.py`), a single-notebook version's one step
  `main` from its own columns; every run executes through the same steps.
- `step_folder(runs_root, run, step)` is where a step's files are: a
  single-notebook run keeps them in the run's folder as before; a workflow's
  step in `<run>/steps/<step>/`, the step of a repaired run that reused an
  earlier run's step in that run's folder. `run_folder` is the folder a
  workflow's steps share (None for a single notebook).
- `step_parameters(...)` is what papermill gets for a step: the run's values
  named `<step>.<name>` (plain names for a single notebook), and each upstream
  step's recorded outputs as `<upstream>_<output>` where the notebook declares
  such a parameter; an upstream output wins over a run's value, which is why
  `fed_by_upstream(steps)` names, for the run form, the run values an upstream
  output replaces (`report.prepare_rows` -> `prepare.rows`).
- `step_spec(...)` is the executor's `RunSpec` for one step (a repair's names
  the run its folder is a copy of); `deployment_specs`
  those a deployment's runs start from (run id 0: what `Executor.prepare`
  stores).
"""

from __future__ import annotations

from pathlib import Path

from ...catalog import ResolvedProfile
from ..publishing.specs import RunSpec
from ..publishing.workflow_spec import WorkflowStep, dag_steps, steps_from_stored
from .dag import NOTEBOOK, ancestors

SINGLE = "main"  # the one step of a single-notebook version
SHARED = "shared"  # a workflow run's shared folder, inside its run folder


def version_steps(version) -> list[WorkflowStep]:
    if version.steps:
        return steps_from_stored(version.steps)
    return [
        WorkflowStep(
            name=SINGLE,
            notebook=None,  # the version's own notebook.ipynb
            profile=version.profile,
            choices=dict(version.choices),
            resources=dict(version.resources),
            image=version.image,
            kernel=version.kernel,
            declared=dict(version.parameters),
        )
    ]


def step_facts(step: WorkflowStep) -> dict:
    """A step as a run's history shows it: what it waits for, what it ran with, and a gate's
    approvers (known before the gate is reached)."""
    limits = {k: step.resources.get(k) for k in ("cpu_limit", "memory_limit", "gpus")}
    facts = {"after": list(step.depends_on), "kind": step.kind, "profile": step.profile, **limits}
    return {**facts, "approvers": step.approvers}


def is_workflow(version) -> bool:
    return bool(version.steps)


def step_folder(
    runs_root: Path, run_id: int, step: str, workflow: bool, reused_from: int | None = None
) -> Path:
    run_dir = runs_root / str(reused_from or run_id)
    return run_dir / "steps" / step if workflow else run_dir


def run_folder(runs_root: Path, run_id: int, workflow: bool) -> Path | None:
    return runs_root / str(run_id) / SHARED if workflow else None


def step_parameters(step: WorkflowStep, run_values: dict, upstream: dict[str, dict], workflow: bool) -> dict:
    """`upstream`: step name -> its recorded outputs, for the steps upstream of `step`."""
    if not workflow:
        values = dict(run_values)
    else:
        prefix = f"{step.name}."
        values = {k[len(prefix) :]: v for k, v in run_values.items() if k.startswith(prefix)}
    for source, outputs in upstream.items():
        for output, value in outputs.items():
            if f"{source}_{output}" in step.declared:
                values[f"{source}_{output}"] = value
    return values


def fed_by_upstream(steps: list[WorkflowStep]) -> dict[str, str]:
    """Run values (`<step>.<name>`) that an upstream step's output replaces when that step records
    it, each with that output (`<upstream>.<output>`)."""
    shapes, notebooks = dag_steps(steps), {s.name for s in steps if s.kind == NOTEBOOK}
    fed = {}
    for step in steps:
        for source in sorted(ancestors(shapes, step.name) & notebooks):  # a gate records nothing
            for name in step.declared:
                if name.startswith(f"{source}_") and len(name) > len(source) + 1:
                    fed[f"{step.name}.{name}"] = f"{source}.{name[len(source) + 1 :]}"
    return fed


def step_spec(
    run_id: int,
    team: str,
    pipeline: str,
    version_number: int,
    step: WorkflowStep,
    parameters: dict,
    timeout: int,
    retries: int,
    shared: Path | None,
    workflow: bool,
    copy_of: int | None = None,
) -> RunSpec:
    assert step.kind == NOTEBOOK
    return RunSpec(
        run_id=run_id,
        team=team,
        pipeline=pipeline,
        version=version_number,
        profile=ResolvedProfile.from_stored(step.profile, step.image, step.choices, step.resources),
        kernel=step.kernel,
        parameters=parameters,
        timeout=timeout,
        retries=retries,
        step=step.name if workflow else None,
        run_folder=shared,
        run_folder_copy_of=copy_of,
    )


def deployment_specs(pipeline, version, timeout: int, parameters: dict, retries: int) -> list[RunSpec]:
    """Each notebook step's spec as the deployment runs it (run id 0), `parameters` its values."""
    workflow = is_workflow(version)
    return [
        step_spec(
            0,
            pipeline.team,
            pipeline.name,
            version.number,
            step,
            step_parameters(step, parameters, {}, workflow),
            step.timeout or timeout,
            retries if step.retries is None else step.retries,
            None,  # a run folder exists only once a run does
            workflow,
        )
        for step in version_steps(version)
        if step.kind == NOTEBOOK
    ]
