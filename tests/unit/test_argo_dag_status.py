"""A workflow run's Argo Workflow read back into each step's state, and a gate resumed by a patch.

Argo's statuses are written by hand in the shapes Argo reports (nodes named
after their DAG task, Retry nodes over attempts, a Suspend node for a gate,
output parameters with their values); no Argo controller runs here.
"""

from __future__ import annotations

import json

import pytest
from analysis_hub.backends.kubernetes.dag_status import gate_decision_patch, step_states
from analysis_hub.pipelines.dag import next_moves
from analysis_hub.pipelines.workflow import WorkflowStep, dag_steps

STEPS = [
    WorkflowStep("prepare"),
    WorkflowStep("train", depends_on=("prepare",), when=("prepare.rows > 0",)),
    WorkflowStep("review", kind="approval", depends_on=("train",), approvers="ml-leads", timeout=3600),
    WorkflowStep("publish_model", depends_on=("review",)),
]


def node(name, type_, phase, outputs=None, **more):
    found = {"displayName": name, "type": type_, "phase": phase, **more}
    if outputs is not None:
        found["outputs"] = {"parameters": [{"name": k, "value": v} for k, v in outputs.items()]}
    return found


def workflow(phase, *nodes, shutdown=None):
    wf = {
        "metadata": {"name": "ml-churn-7-abc"},
        "spec": {"shutdown": shutdown} if shutdown else {},
        "status": {"phase": phase, "nodes": {"root": node("ml-churn-7-abc", "DAG", phase)}},
    }
    for index, n in enumerate(nodes):
        wf["status"]["nodes"][n.pop("id", f"n{index}")] = n
    return wf


def merge(target: dict, patch: dict) -> dict:
    """JSON merge patch (RFC 7386), as the API server applies `application/merge-patch+json`."""
    out = dict(target)
    for key, value in patch.items():
        out[key] = merge(out.get(key) or {}, value) if isinstance(value, dict) else value
    return out


def test_a_gate_waiting_then_approved_by_patch_lets_the_run_go_on():
    """A gate suspended is `waiting` (the run waits, holding nothing); the patch that approves it
    does what Argo's `node set` and `resume` do (its node Succeeded, the supplied `decision` given
    its value in place of its valueFrom), is read back as approved, and dag.py then starts the step
    after it. The recorded outputs come from the `outputs` parameter."""
    wf = workflow(
        "Running",
        node("prepare", "Pod", "Succeeded", {"outputs": '{"rows": 20}', "when-train-0": "true"}),
        node("train", "Pod", "Succeeded", {"outputs": '{"accuracy": 0.9}'}),
        node("review", "Suspend", "Running", id="gate"),
    )
    # What Argo puts on a suspend node with a supplied output (`addRawOutputFields`).
    supplied = {
        "name": "decision",
        "valueFrom": {"supplied": {}, "default": "rejected"},
        "enum": ["approved", "rejected"],
    }
    wf["status"]["nodes"]["gate"]["outputs"] = {"parameters": [supplied]}
    states = step_states(wf, STEPS)
    assert {k: s.status for k, s in states.items()} == {
        "prepare": "succeeded",
        "train": "succeeded",
        "review": "waiting",
        "publish_model": "pending",
    }
    assert states["prepare"].outputs == {"rows": 20}
    waiting = next_moves(dag_steps(STEPS), states)
    assert (waiting.start, waiting.finished) == ([], False)
    patch = gate_decision_patch(wf, "review", "approved", "2026-12-02T10:00:00Z", by="alice")
    decided = {"name": "decision", "enum": ["approved", "rejected"], "value": "approved"}
    assert patch == {
        "status": {
            "nodes": {
                "gate": {
                    "phase": "Succeeded",
                    "finishedAt": "2026-12-02T10:00:00Z",
                    "message": "approved by alice",
                    "outputs": {"parameters": [decided]},
                }
            }
        }
    }
    approved = step_states(merge(wf, patch), STEPS)
    assert approved["review"].status == "approved"
    assert next_moves(dag_steps(STEPS), approved).start == ["publish_model"]
    with pytest.raises(ValueError, match="step review: no approval is waiting"):
        gate_decision_patch(merge(wf, patch), "review", "rejected", "2026-12-02T10:01:00Z")
    with pytest.raises(ValueError, match="decision: 'maybe' is not one of approved, rejected"):
        gate_decision_patch(wf, "review", "maybe", "2026-12-02T10:01:00Z")


def test_a_gate_that_timed_out_is_rejected_and_so_is_the_run_though_argo_says_succeeded():
    """At its timeout the gate resumes with the default `rejected`: the step after it is Omitted,
    read as skipped, and dag.run_status makes the run rejected whatever Argo's phase says."""
    wf = workflow(
        "Succeeded",
        node("prepare", "Pod", "Succeeded", {"outputs": '{"rows": 20}'}),
        node("train", "Pod", "Succeeded", {"outputs": "{}"}),
        node("review", "Suspend", "Succeeded", {"decision": "rejected"}),
        node("publish-model", "Skipped", "Omitted"),
    )
    states = step_states(wf, STEPS)
    assert states["review"].status == "rejected" and states["publish_model"].status == "skipped"
    moves = next_moves(dag_steps(STEPS), states)
    assert (moves.finished, moves.status, moves.reason) == (True, "rejected", "step review rejected")


@pytest.mark.parametrize(
    ("train", "shutdown", "expected"),
    [
        (
            node("train", "Pod", "Failed", {"outputs": '{"loss": 9}'}, message="Error (exit code 1)"),
            None,
            "failed",
        ),
        (
            node(
                "train",
                "Pod",
                "Failed",
                message="Pod was active on the node longer than the specified deadline",
            ),
            None,
            "timed_out",
        ),
        (node("train", "Pod", "Failed", message="Stopped with strategy 'Stop'"), None, "cancelled"),
        (node("train", "Pod", "Failed", message="Error (exit code 143)"), "Stop", "cancelled"),
        (node("train", "Pod", "Error", message="pod deleted"), None, "failed"),
        (
            node("train", "Skipped", "Skipped", message="when 'false == true' evaluated false"),
            None,
            "skipped",
        ),
        (node("train", "Pod", "Running"), None, "running"),
    ],
)
def test_a_notebook_steps_node_maps_to_dag_pys_states(train, shutdown, expected):
    """Failed, past a deadline, stopped, errored, skipped by `when`, running: each as dag.py names
    it; a failed step keeps the outputs it recorded."""
    wf = workflow("Failed", node("prepare", "Pod", "Succeeded"), train, shutdown=shutdown)
    state = step_states(wf, STEPS)["train"]
    assert state.status == expected
    if expected == "failed" and train["phase"] == "Failed":
        assert state.outputs == {"loss": 9}


def test_a_retried_step_is_its_retry_node_with_its_last_attempts_outputs():
    """With retries Argo makes a Retry node over attempts named `<task>(0)`, `<task>(1)`: the step's
    state is the Retry node's, its outputs the last attempt's."""
    first = node("prepare(0)", "Pod", "Failed", {"outputs": '{"rows": 1}'}, finishedAt="2026-12-02T10:00:00Z")
    second = node(
        "prepare(1)", "Pod", "Succeeded", {"outputs": '{"rows": 2}'}, finishedAt="2026-12-02T10:05:00Z"
    )
    retry = node("prepare", "Retry", "Succeeded", children=["a0", "a1"])
    wf = workflow("Running", retry, {**first, "id": "a0"}, {**second, "id": "a1"})
    state = step_states(wf, STEPS)["prepare"]
    assert (state.status, state.outputs) == ("succeeded", {"rows": 2})


def test_steps_argo_never_reached_are_pending_then_skipped():
    """No node yet: pending while the Workflow runs; once it has finished (a deadline, a stop),
    skipped. Unreadable outputs are no outputs."""
    running = workflow("Running", node("prepare", "Pod", "Succeeded", {"outputs": "not json"}))
    states = step_states(running, STEPS)
    assert states["train"].status == "pending" and states["prepare"].outputs == {}
    ended = workflow("Failed", node("prepare", "Pod", "Failed", message="Step exceeded its deadline"))
    assert {k: s.status for k, s in step_states(ended, STEPS).items()} == {
        "prepare": "timed_out",
        "train": "skipped",
        "review": "skipped",
        "publish_model": "skipped",
    }
    assert json.loads(json.dumps(step_states(ended, STEPS)["prepare"].outputs)) == {}
