"""`pipeline.yaml`: a workflow of notebooks, read and checked (pure, given its notebooks and profiles).

A workflow version is `pipeline.yaml` and the notebooks it names, published
together as one immutable version:

    steps:
      - name: prepare                 # a-z, 0-9, _ ; unique
        notebook: prepare.ipynb       # a notebook published with the spec
        profile: pyspark              # the team's profiles, as in the spawn form
        choices: {}                   # the profile's options
        parameters: {rows: 1000}      # the notebook's own parameters only
        timeout: 30m                  # per step (default: the deployment's timeout)
        retries: 1                    # per step (default: the deployment's retries)
      - name: train
        notebook: train.ipynb
        profile: tensorflow
        depends_on: [prepare]
        when: prepare.rows > 0        # or a list; see dag.parse_condition
      - name: review
        kind: approval                # waits for a member of `approvers` to decide
        approvers: ml-leads           # a hub group
        timeout: 72h                  # undecided by then: rejected (default 72h)
        depends_on: [train]

Contract:
- `check_workflow(text, notebooks, resolve)` returns the workflow's steps
  (`WorkflowStep`, in a topological order) or raises `SpecError` naming the
  file, the step and the key for everything wrong at once: YAML, unknown
  keys, a missing notebook, an unknown step in `depends_on` or `when`, a
  cycle, a condition on a step that isn't upstream, a parameter the notebook
  doesn't have, and the profile errors `resolve(profile, choices, nb)` raises
  (an unknown or forbidden profile, bad choices).
- A step's outputs (`analysis_hub_outputs.record`) reach later steps as the
  papermill parameter `<step>_<output>` where a notebook declares one.
- `stored_steps`/`steps_from_stored`: the steps as the version row keeps them
  (JSON) and back; `dag_steps` the shapes `dag.next_moves` needs.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

import yaml

from ...quantities import parse_duration
from ..engine.dag import APPROVAL, NOTEBOOK, Step, ancestors, parse_condition
from .notebooks import NotebookError, Parameter, coerce_parameters, kernel_name, notebook_parameters
from .specs import SpecError

SPEC_FILE = "pipeline.yaml"
STEP_NAME = r"^[a-z][a-z0-9_]{0,39}$"
APPROVAL_TIMEOUT = 72 * 3600
NOTEBOOK_KEYS = {"name", "kind", "notebook", "profile", "choices", "parameters", "depends_on", "when"}
NOTEBOOK_KEYS |= {"timeout", "retries"}
APPROVAL_KEYS = {"name", "kind", "approvers", "timeout", "depends_on", "when"}


@dataclass(frozen=True)
class WorkflowStep:
    """One step as a version records it: its profile resolved (image, limits, kernel) like a
    single-notebook version's, so it runs as published even after the catalog changes."""

    name: str
    kind: str = NOTEBOOK
    depends_on: tuple[str, ...] = ()
    when: tuple[str, ...] = ()
    notebook: str | None = None
    profile: str | None = None
    choices: dict = field(default_factory=dict)
    resources: dict = field(default_factory=dict)  # the resolved profile's `to_stored()`
    image: str | None = None
    kernel: str | None = None
    declared: dict = field(default_factory=dict)  # the notebook's parameters: name -> {type, default}
    parameters: dict = field(default_factory=dict)  # the spec's values for them
    timeout: int | None = None  # None: the deployment's
    retries: int | None = None
    approvers: str | None = None


def check_workflow(text: str, notebooks: dict, resolve) -> list[WorkflowStep]:
    """`notebooks`: file name -> parsed notebook; `resolve(profile, choices, notebook)` -> the
    `ResolvedProfile` (the notebook's kernel's profile when `profile` is None) or raises
    ValueError with the catalog's message."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SpecError(f"{SPEC_FILE}: not valid YAML: {str(e).splitlines()[0]}") from None
    raw_steps = document.get("steps") if isinstance(document, dict) else None
    if not isinstance(raw_steps, list) or not raw_steps:
        raise SpecError(f"{SPEC_FILE}: steps: a list of steps is required (see the docs for an example)")
    if extra := sorted(set(document) - {"steps"}):
        raise SpecError(f"{SPEC_FILE}: {', '.join(map(str, extra))}: unknown key (allowed: steps)")
    problems: list[str] = []
    names = [s.get("name") if isinstance(s, dict) else None for s in raw_steps]
    steps: list[WorkflowStep] = []
    for index, raw in enumerate(raw_steps):
        where = f"{SPEC_FILE}: steps[{index}]"
        if not isinstance(raw, dict):
            problems.append(f"{where}: a step is a mapping with name, notebook, profile...")
            continue
        name = raw.get("name")
        if not isinstance(name, str) or not re.match(STEP_NAME, name):
            problems.append(f"{where}: name: {name!r} must be a-z, 0-9 and _, starting with a letter")
            continue
        where = f"{SPEC_FILE}: step {name}"
        if names.count(name) > 1:
            problems.append(f"{where}: name: used by more than one step")
        kind = raw.get("kind", NOTEBOOK)
        if kind not in (NOTEBOOK, APPROVAL):
            problems.append(f"{where}: kind: {kind!r} is not one of {NOTEBOOK}, {APPROVAL}")
            continue
        allowed = NOTEBOOK_KEYS if kind == NOTEBOOK else APPROVAL_KEYS
        if extra := sorted(set(map(str, raw)) - allowed):
            problems.append(
                f"{where}: {', '.join(extra)}: unknown key (allowed: {', '.join(sorted(allowed))})"
            )
        known = ", ".join(n for n in names if isinstance(n, str))
        depends_on = raw.get("depends_on") or []
        if isinstance(depends_on, str):
            depends_on = [depends_on]
        if not isinstance(depends_on, list):
            problems.append(f"{where}: depends_on: {depends_on!r} is not a list of steps (steps: {known})")
            depends_on = []
        for dep in depends_on:
            if dep not in names:
                problems.append(f"{where}: depends_on: {dep!r} is not a step (steps: {known})")
        when = raw.get("when") or []
        when = [when] if isinstance(when, str) else list(when) if isinstance(when, list) else [when]
        for condition in when:
            try:
                named = parse_condition(condition).step
            except ValueError as e:
                problems.append(f"{where}: when: {e}")
                continue
            if named not in names:  # else _check_conditions_upstream says whether it is upstream
                problems.append(
                    f"{where}: when: {condition!r} names {named!r}, which is not a step (steps: {known})"
                )
        step = {"name": name, "kind": kind, "depends_on": tuple(depends_on), "when": tuple(map(str, when))}
        timeout = raw.get("timeout")
        if timeout is not None or kind == APPROVAL:
            try:
                step["timeout"] = parse_duration(timeout if timeout is not None else APPROVAL_TIMEOUT)
                if step["timeout"] < 1:  # 0 would mean no time at all (a gate: rejected at once)
                    raise ValueError(timeout)
            except (ValueError, TypeError):
                problems.append(f"{where}: timeout: {timeout!r} is not a duration such as 600, 30m or 72h")
        if kind == APPROVAL:
            approvers = raw.get("approvers")
            if not isinstance(approvers, str) or not approvers:
                problems.append(f"{where}: approvers: the hub group whose members decide is required")
            step["approvers"] = approvers
            steps.append(WorkflowStep(**step))
            continue
        retries = raw.get("retries")
        if retries is not None and (
            not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 10
        ):
            problems.append(f"{where}: retries: {retries!r} must be a whole number from 0 to 10")
        step["retries"] = retries
        mappings = (("parameters", "parameter names to values"), ("choices", "choices to options"))
        not_mappings = [(k, what) for k, what in mappings if not isinstance(raw.get(k) or {}, dict)]
        for key, what in not_mappings:
            problems.append(f"{where}: {key}: {raw[key]!r} is not a mapping of {what}")
        if not_mappings:
            continue
        file = raw.get("notebook")
        nb = notebooks.get(file) if isinstance(file, str) else None
        if nb is None:
            given = ", ".join(sorted(notebooks)) or "none"
            problems.append(
                f"{where}: notebook: {file!r} was not published with the spec (notebooks: {given})"
            )
            continue
        try:
            declared = notebook_parameters(nb)
            values = coerce_parameters(declared, dict(raw.get("parameters") or {}))
        except NotebookError as e:
            problems.append(f"{where}: {file}: parameters: {e}")
            continue
        try:
            resolved = resolve(raw.get("profile"), dict(raw.get("choices") or {}), nb)
        except ValueError as e:  # the kernel's message names the key itself: say it once
            problems.append(f"{where}: profile: {str(e).removeprefix('profile: ')}")
            continue
        step |= {"notebook": file, "profile": resolved.slug, "choices": resolved.choices}
        step |= {"resources": resolved.to_stored(), "image": resolved.image}
        step |= {"kernel": kernel_name(nb), "parameters": values}
        step["declared"] = {k: p.to_json() for k, p in declared.items()}
        steps.append(WorkflowStep(**step))
    if problems:
        raise SpecError("; ".join(problems))
    ordered = _topological(steps)
    _check_conditions_upstream(ordered)
    return ordered


def _topological(steps: list[WorkflowStep]) -> list[WorkflowStep]:
    by_name = {s.name: s for s in steps}
    ordered: list[WorkflowStep] = []
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            loop = [*path[path.index(name) :], name]
            raise SpecError(f"{SPEC_FILE}: step {name}: depends_on: a cycle: {' → '.join(loop)}")
        state[name] = "visiting"
        for dep in by_name[name].depends_on:
            visit(dep, [*path, name])
        state[name] = "done"
        ordered.append(by_name[name])

    for step in steps:
        visit(step.name, [])
    return ordered


def _check_conditions_upstream(steps: list[WorkflowStep]) -> None:
    shapes = dag_steps(steps)
    problems = []
    for shape in shapes:
        upstream = ancestors(shapes, shape.name)
        for condition in shape.when:
            if condition.step not in upstream:
                problems.append(
                    f"{SPEC_FILE}: step {shape.name}: when: {condition.text!r} names {condition.step!r},"
                    f" which is not upstream of {shape.name} (add it to depends_on)"
                )
    if problems:
        raise SpecError("; ".join(problems))


def dag_steps(steps: list[WorkflowStep]) -> list[Step]:
    return [
        Step(s.name, s.kind, tuple(s.depends_on), tuple(parse_condition(c) for c in s.when)) for s in steps
    ]


def stored_steps(steps: list[WorkflowStep]) -> list[dict]:
    return [{**asdict(s), "depends_on": list(s.depends_on), "when": list(s.when)} for s in steps]


def steps_from_stored(rows: list[dict]) -> list[WorkflowStep]:
    return [
        WorkflowStep(**{**r, "depends_on": tuple(r["depends_on"]), "when": tuple(r["when"])}) for r in rows
    ]


def declared_run_parameters(steps: list[WorkflowStep]) -> dict[str, Parameter]:
    """A workflow run's parameters: each notebook step's as `<step>.<name>`, defaulting to the
    spec's value; a deployment or a run overrides them under the same names."""
    out = {}
    for step in steps:
        for name, p in step.declared.items():
            default = step.parameters.get(name, p["default"])
            out[f"{step.name}.{name}"] = Parameter(p["type"], default)
    return out
