"""A workflow run's Argo Workflow read back: each step's state, and a gate's decision as a patch (pure).

Contract:
- `step_states(workflow, steps)` is `{step: dag.StepState}` from the
  Workflow's nodes (a step's node is the one Argo names after its task,
  `workflow_dag.task_name`; a retried step's is its Retry node), so the run's
  status is `dag.run_status`'s, never Argo's phase (a rejected gate ends
  Succeeded):
  - a notebook step: Pending or Running -> running; Succeeded -> succeeded;
    Failed past a deadline -> timed_out; Failed or Error -> failed, or
    cancelled once the Workflow was stopped; Skipped or Omitted -> skipped.
    Its outputs are its `outputs` parameter (the notebook's recorded outputs).
  - a gate: suspended -> waiting; resumed -> approved when its `decision` is
    `approved`, else rejected (its timeout supplies `rejected`).
  - a step with no node yet: pending while the Workflow runs, skipped once it
    has finished (Argo never reached it).
- `gate_decision_patch(workflow, step, decision, at, by)` is the JSON merge
  patch of the Workflow that resumes the waiting gate `step` with `decision`
  (`approved` or `rejected`), what Argo's own `node set` and `resume` write:
  its node Succeeded at `at`, the message "<decision> by <by>", the supplied
  `decision` output given its value in place of its valueFrom. ValueError
  when the gate is not waiting (decided, timed out, or never reached). The
  nodes must be in `status.nodes` (not compressed or offloaded by Argo).
"""

from __future__ import annotations

import json

from ...pipelines.dag import APPROVAL, StepState
from ...pipelines.workflow import WorkflowStep
from .workflow_dag import APPROVED, DECISION, OUTPUTS, REJECTED, task_name
from .workflows import _DEADLINE, _STOPPED, FINISHED_PHASES

RUNNING = ("Pending", "Running")
SKIPPED = ("Skipped", "Omitted")


def step_states(workflow: dict, steps: list[WorkflowStep]) -> dict[str, StepState]:
    status = workflow.get("status") or {}
    nodes = status.get("nodes") or {}
    finished = status.get("phase") in FINISHED_PHASES
    stopped = bool((workflow.get("spec") or {}).get("shutdown"))
    return {s.name: _state(s, _node(nodes, s.name), nodes, finished, stopped) for s in steps}


def _node(nodes: dict, step: str) -> dict | None:
    name = task_name(step)
    matches = [n for n in nodes.values() if n.get("displayName") == name and n.get("type") != "DAG"]
    # A retried step: its Retry node, whose children are the attempts (`<task>(0)`...).
    return next((n for n in matches if n.get("type") == "Retry"), matches[0] if matches else None)


def _state(step: WorkflowStep, node: dict | None, nodes: dict, finished: bool, stopped: bool) -> StepState:
    if node is None:
        return StepState("skipped" if finished else "pending")
    phase = node.get("phase") or "Pending"
    if phase in SKIPPED:
        return StepState("skipped")
    if step.kind == APPROVAL:
        if phase in RUNNING:
            return StepState("waiting")
        return StepState(APPROVED if _parameter(node, DECISION) == APPROVED else REJECTED)
    if phase in RUNNING:
        return StepState("running")
    outputs = _outputs(node, nodes)
    if phase == "Succeeded":
        return StepState("succeeded", outputs)
    messages = [
        node.get("message") or "",
        *(nodes.get(c, {}).get("message") or "" for c in node.get("children") or []),
    ]
    if stopped or any(_STOPPED.search(m) for m in messages):
        return StepState("cancelled", outputs)
    if any(_DEADLINE.search(m) for m in messages):
        return StepState("timed_out", outputs)
    return StepState("failed", outputs)


def _parameter(node: dict, name: str) -> str | None:
    for parameter in (node.get("outputs") or {}).get("parameters") or []:
        if parameter.get("name") == name:
            return parameter.get("value")
    return None


def _outputs(node: dict, nodes: dict) -> dict:
    """The step's recorded outputs; for a Retry node without outputs of its own, its last attempt's."""
    text = _parameter(node, OUTPUTS)
    if text is None:
        attempts = sorted(
            (nodes[c] for c in node.get("children") or [] if c in nodes),
            key=lambda n: n.get("finishedAt") or "",
        )
        text = next((_parameter(a, OUTPUTS) for a in reversed(attempts) if _parameter(a, OUTPUTS)), None)
    try:
        outputs = json.loads(text) if text else {}
    except ValueError:
        return {}
    return outputs if isinstance(outputs, dict) else {}


def gate_decision_patch(workflow: dict, step: str, decision: str, at: str, by: str = "") -> dict:
    """`at`: the decision's time, RFC 3339 (e.g. 2026-12-02T10:00:00Z); `by`: who decided."""
    if decision not in (APPROVED, REJECTED):
        raise ValueError(f"decision: {decision!r} is not one of {APPROVED}, {REJECTED}")
    nodes = (workflow.get("status") or {}).get("nodes") or {}
    waiting = [
        node_id
        for node_id, n in nodes.items()
        if n.get("displayName") == task_name(step)
        and n.get("type") == "Suspend"
        and n.get("phase") == "Running"
    ]
    if not waiting:
        raise ValueError(f"step {step}: no approval is waiting in Workflow {workflow['metadata']['name']}")
    [node_id] = waiting
    # As Argo's `node set`: the supplied parameter gets its value and loses its valueFrom (a merge
    # patch replaces the whole list, so the node's other parameters are kept as they are).
    parameters = [
        {k: v for k, v in p.items() if k != "valueFrom"} | {"value": decision}
        if p.get("name") == DECISION
        else p
        for p in (nodes[node_id].get("outputs") or {}).get("parameters") or [{"name": DECISION}]
    ]
    node = {"phase": "Succeeded", "finishedAt": at, "outputs": {"parameters": parameters}}
    if by:
        node["message"] = f"{decision} by {by}"
    return {"status": {"nodes": {node_id: node}}}
