"""Approval gates (pipelines.gates, execution): a run waits at a gate holding nothing, the approvers
are notified through the deployment's real webhook, only a member of the approver group decides,
approval resumes the run, rejection and a missed deadline end it rejected, and all of it is audited.
The executor is a scripted stand-in (pipelines_support.ScriptedExecutor)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from analysis_hub.pipelines.access import Conflict, Forbidden
from pipelines_support import ADMIN, ALICE, CAROL, ScriptedExecutor, make_service
from webhooks import receive_webhooks
from workflow_support import (
    DAVE,
    GATED,
    PREPARE,
    PUBLISH,
    REVIEW,
    audit_actions,
    published_workflow,
    run_row,
    step_rows,
)

RECORDS = {"prepare": {"rows": 5}, "train": {"accuracy": 0.9}}


@pytest.fixture
def webhooks():
    with receive_webhooks() as (url, received):
        yield SimpleNamespace(url=url, received=received)


async def at_the_gate(tmp_path, webhooks, steps=GATED):
    """A service, its executor, and a run of the gated workflow that has reached the gate."""
    scripted = ScriptedExecutor(outputs=RECORDS)
    pipelines = make_service(tmp_path, scripted)
    await published_workflow(pipelines, ALICE, steps=steps, deploy={"notify_url": webhooks.url})
    started = await pipelines.runs.run_now(ALICE, "data-team", "flow")
    await pipelines.runs.wait_idle()
    return pipelines, scripted, started["id"]


async def test_a_run_waits_at_the_gate_holding_nothing_and_the_approvers_are_notified(tmp_path, webhooks):
    """The run reaches the gate after train and is `waiting`: no task follows it and nothing is in
    the executor, the gate records its approver group and a 72 h deadline, the webhook got the
    approval message with a link to the run's page, and the request is audited."""
    pipelines, scripted, run_id = await at_the_gate(tmp_path, webhooks)
    assert run_row(pipelines, run_id).status == "waiting"
    assert [spec.step for spec, _ in scripted.runs] == ["prepare", "train"]
    assert pipelines.runs._by_run == {} and pipelines.runs._tasks == set()
    gate = step_rows(pipelines, run_id)["review"]
    assert (gate.status, gate.approvers, gate.decided_by) == ("waiting", "ml-leads", None)
    assert (gate.deadline - gate.started_at).total_seconds() == 72 * 3600
    assert step_rows(pipelines, run_id)["publish"].status == "pending"
    [message] = webhooks.received
    url = f"http://hub.example.com/services/pipelines/runs/{run_id}"
    assert message["analysis_hub"] == {
        "team": "data-team",
        "pipeline": "flow",
        "run": run_id,
        "step": "review",
        "url": url,
    }
    assert f"<{url}|" in message["text"] and "ml-leads" in message["text"]
    [asked] = [e for e in pipelines.audit(ALICE, "data-team", "flow") if e["action"] == "approval-requested"]
    assert (asked["actor"], asked["after"]["run"], asked["after"]["step"]) == ("alice", run_id, "review")
    deadline = gate.deadline.isoformat() + "Z"  # UTC, said as the API says times
    assert (asked["after"]["approvers"], asked["after"]["deadline"]) == ("ml-leads", deadline)


async def test_someone_outside_the_approver_group_is_forbidden_and_nothing_changes(tmp_path, webhooks):
    """A team member, a member of another team and an admin outside `ml-leads` all get Forbidden;
    the gate still waits, the run still waits, and nothing is audited for them."""
    pipelines, scripted, run_id = await at_the_gate(tmp_path, webhooks)
    audited = audit_actions(pipelines)
    for outsider in (ALICE, CAROL, ADMIN):
        with pytest.raises(Forbidden, match="only members of ml-leads may decide on review"):
            pipelines.runs.gates.decide(outsider, run_id, "review", True, "looks fine")
    await pipelines.runs.wait_idle()
    assert step_rows(pipelines, run_id)["review"].status == "waiting"
    assert run_row(pipelines, run_id).status == "waiting"
    assert audit_actions(pipelines) == audited and len(scripted.runs) == 2


async def test_approval_by_a_member_resumes_the_run_downstream(tmp_path, webhooks):
    """dave (ml-leads) approves with a comment: the decision, who and the comment are recorded on
    the gate and audited, publish runs with train's output, and the run succeeds; deciding again
    is a Conflict."""
    pipelines, scripted, run_id = await at_the_gate(tmp_path, webhooks)
    decided = pipelines.runs.gates.decide(DAVE, run_id, "review", True, "metrics checked")
    assert (decided["status"], decided["decided_by"], decided["comment"]) == (
        "approved",
        "dave",
        "metrics checked",
    )
    await pipelines.runs.wait_idle()
    assert [spec.step for spec, _ in scripted.runs] == ["prepare", "train", "publish"]
    assert scripted.runs[-1][0].parameters == {"train_accuracy": 0.9}
    rows = step_rows(pipelines, run_id)
    assert (rows["review"].status, rows["review"].decided_by, rows["review"].comment) == (
        "approved",
        "dave",
        "metrics checked",
    )
    assert rows["publish"].status == "succeeded" and run_row(pipelines, run_id).status == "succeeded"
    [event] = [e for e in pipelines.audit(ALICE, "data-team", "flow") if e["action"] == "approve"]
    assert (event["actor"], event["before"]) == (
        "dave",
        {"run": run_id, "step": "review", "status": "waiting"},
    )
    assert event["after"] == {
        "run": run_id,
        "step": "review",
        "decision": "approved",
        "comment": "metrics checked",
    }
    assert event["at"].endswith("Z")
    with pytest.raises(Conflict, match="is not waiting for a decision"):
        pipelines.runs.gates.decide(DAVE, run_id, "review", False)


async def test_rejection_ends_the_run_rejected_with_downstream_skipped(tmp_path, webhooks):
    """dave rejects: publish is skipped because the gate was rejected, never runs, and the run
    ends `rejected` at the gate with who rejected it and why; audited as `reject`."""
    pipelines, scripted, run_id = await at_the_gate(tmp_path, webhooks)
    pipelines.runs.gates.decide(DAVE, run_id, "review", False, "accuracy too good to be true")
    await pipelines.runs.wait_idle()
    assert len(scripted.runs) == 2
    rows = step_rows(pipelines, run_id)
    assert (rows["publish"].status, rows["publish"].reason) == ("skipped", "skipped: review rejected")
    run = run_row(pipelines, run_id)
    assert (run.status, run.reason) == (
        "rejected",
        "step review rejected by dave: “accuracy too good to be true”",
    )
    assert ("dave", "reject") in audit_actions(pipelines)


async def test_a_gate_past_its_deadline_rejects_with_the_actor_timeout(tmp_path, webhooks):
    """A gate with `timeout: 1` isn't expired before its deadline; once past it, `expire()` rejects
    it with the actor `timeout`, the run ends rejected with downstream skipped, and the audit has
    the request and the timed-out rejection."""
    steps = [*GATED[:2], {**REVIEW, "timeout": 1}, GATED[3]]
    pipelines, scripted, run_id = await at_the_gate(tmp_path, webhooks, steps)
    gate = step_rows(pipelines, run_id)["review"]
    assert (gate.deadline - gate.started_at).total_seconds() == 1
    assert pipelines.runs.gates.expire() == []
    await asyncio.sleep(1.2)  # past the deadline; nothing is timed, only ordered
    assert pipelines.runs.gates.expire() == [run_id]
    await pipelines.runs.wait_idle()
    rows = step_rows(pipelines, run_id)
    assert (rows["review"].status, rows["review"].decided_by) == ("rejected", "timeout")
    assert (rows["review"].comment, rows["review"].reason) == (
        "no decision within 1s",
        "rejected: no decision within 1s",
    )
    assert rows["publish"].status == "skipped" and run_row(pipelines, run_id).status == "rejected"
    assert len(scripted.runs) == 2
    decisions = [a for a in audit_actions(pipelines) if a[1] in ("approval-requested", "approve", "reject")]
    assert decisions == [("alice", "approval-requested"), ("timeout", "reject")]


async def test_a_waiting_run_survives_a_restart_and_is_decided_on_the_new_process(tmp_path, webhooks):
    """A waiting run holds nothing, so a restarted service (recover at start) leaves it waiting,
    and an approval there resumes it to the end."""
    _, scripted, run_id = await at_the_gate(tmp_path, webhooks)
    restarted = make_service(tmp_path, scripted)
    restarted.start()
    try:
        assert run_row(restarted, run_id).status == "waiting"
        restarted.runs.gates.decide(DAVE, run_id, "review", True)
        await restarted.runs.wait_idle()
        assert run_row(restarted, run_id).status == "succeeded"
    finally:
        restarted.schedules.stop()


async def test_a_waiting_run_can_be_cancelled_and_then_nobody_decides(tmp_path, webhooks):
    """Cancelling a run that waits at its gate cancels the gate and the steps behind it; a
    decision afterwards is a Conflict and the deadline sweep leaves it alone."""
    pipelines, _, run_id = await at_the_gate(tmp_path, webhooks)
    await pipelines.runs.cancel(ALICE, run_id)
    rows = step_rows(pipelines, run_id)
    assert (rows["review"].status, rows["publish"].status) == ("cancelled", "cancelled")
    with pytest.raises(Conflict, match="not waiting for a decision \\(cancelled\\)"):
        pipelines.runs.gates.decide(DAVE, run_id, "review", True)
    assert pipelines.runs.gates.expire() == [] and run_row(pipelines, run_id).status == "cancelled"


async def test_a_decision_while_another_branch_runs_starts_what_it_unblocks_at_once(tmp_path, webhooks):
    """A gate beside a running branch: approving it wakes the task that follows the run, which
    starts the gate's downstream step while the other branch is still in the executor."""
    steps = [
        {"name": "review", "kind": "approval", "approvers": "ml-leads"},
        {**{k: v for k, v in PUBLISH.items() if k != "when"}, "depends_on": ["review"]},
        PREPARE,
    ]
    scripted = ScriptedExecutor(outputs=RECORDS)
    scripted.gate.clear()  # prepare stays in the executor
    pipelines = make_service(tmp_path, scripted)
    await published_workflow(pipelines, ALICE, steps=steps, deploy={})
    run_id = (await pipelines.runs.run_now(ALICE, "data-team", "flow"))["id"]
    await scripted.entered.wait()
    assert step_rows(pipelines, run_id)["review"].status == "waiting"
    pipelines.runs.gates.decide(DAVE, run_id, "review", True)
    while len(scripted.runs) < 2:  # publish reaches the executor while prepare is still there
        await asyncio.sleep(0.01)
    assert [spec.step for spec, _ in scripted.runs] == ["prepare", "publish"]
    scripted.gate.set()
    await pipelines.runs.wait_idle()
    assert run_row(pipelines, run_id).status == "succeeded"


async def test_a_decision_just_as_the_following_task_ended_still_resumes_the_run(tmp_path, webhooks):
    """The task that followed the run has ended but is still listed (its done callbacks not run
    yet): a decision then starts a new task instead of waking the ended one, so the run isn't
    left `running` with nobody following it. (The window is made by listing an ended task.)"""
    pipelines, _, run_id = await at_the_gate(tmp_path, webhooks)
    ended = asyncio.ensure_future(asyncio.sleep(0))
    await ended
    pipelines.runs._by_run[run_id] = ended
    pipelines.runs.gates.decide(DAVE, run_id, "review", True)
    await pipelines.runs.wait_idle()
    assert run_row(pipelines, run_id).status == "succeeded"


async def test_repairing_a_rejected_run_asks_the_approvers_again_without_rerunning_the_work(
    tmp_path, webhooks
):
    """A rejected run can be repaired: prepare and train are kept (not run again) and the gate
    opens anew, notifying the approvers, until someone decides on the new run."""
    pipelines, scripted, run_id = await at_the_gate(tmp_path, webhooks)
    pipelines.runs.gates.decide(DAVE, run_id, "review", False, "retrain with more data")
    await pipelines.runs.wait_idle()
    repaired = (await pipelines.runs.repair(ALICE, run_id))["id"]
    await pipelines.runs.wait_idle()
    rows = step_rows(pipelines, repaired)
    assert {n: (r.status, r.reused_from) for n, r in rows.items()} == {
        "prepare": ("succeeded", run_id),
        "train": ("succeeded", run_id),
        "review": ("waiting", None),
        "publish": ("pending", None),
    }
    assert run_row(pipelines, repaired).status == "waiting" and len(scripted.runs) == 2
    assert [m["analysis_hub"]["run"] for m in webhooks.received if "step" in m["analysis_hub"]] == [
        run_id,
        repaired,
    ]


async def test_the_wait_at_a_gate_does_not_count_against_the_runs_timeout(tmp_path, webhooks):
    """A run with a 2 s timeout waits longer than that at its gate; approved, its next step still
    runs, with the run's time left (at most 2 s, in whole seconds) as its timeout."""
    scripted = ScriptedExecutor(outputs=RECORDS)
    pipelines = make_service(tmp_path, scripted)
    await published_workflow(pipelines, ALICE, steps=GATED, deploy={"timeout": 2})
    run_id = (await pipelines.runs.run_now(ALICE, "data-team", "flow"))["id"]
    await pipelines.runs.wait_idle()
    await asyncio.sleep(2.2)  # the gate waits past the run's timeout
    pipelines.runs.gates.decide(DAVE, run_id, "review", True)
    await pipelines.runs.wait_idle()
    assert run_row(pipelines, run_id).status == "succeeded"
    assert [spec.timeout for spec, _ in scripted.runs if spec.step == "publish"] in ([1], [2])


async def test_a_gate_of_an_interrupted_run_is_closed_with_it(tmp_path):
    """A run stopped by a service restart while one branch ran and its gate waited is failed;
    its gate is cancelled with the reason, so nobody decides on a finished run and the deadline
    sweep leaves it alone."""
    steps = [
        {"name": "review", "kind": "approval", "approvers": "ml-leads"},
        {**{k: v for k, v in PUBLISH.items() if k != "when"}, "depends_on": ["review"]},
        PREPARE,
    ]
    scripted = ScriptedExecutor(outputs=RECORDS)
    scripted.gate.clear()  # prepare stays in the executor when the service "stops"
    pipelines = make_service(tmp_path, scripted)
    await published_workflow(pipelines, ALICE, steps=steps, deploy={})
    run_id = (await pipelines.runs.run_now(ALICE, "data-team", "flow"))["id"]
    await scripted.entered.wait()
    restarted = make_service(tmp_path, ScriptedExecutor())
    restarted.start()  # the same replica's new process: its unfinished runs were interrupted
    try:
        rows = step_rows(restarted, run_id)
        assert run_row(restarted, run_id).status == "failed"
        assert (rows["prepare"].status, rows["review"].status) == ("failed", "cancelled")
        assert rows["review"].reason == "interrupted: the pipelines service stopped during the run"
        with pytest.raises(Conflict, match="not waiting for a decision"):
            restarted.runs.gates.decide(DAVE, run_id, "review", True)
        assert restarted.runs.gates.expire() == []
    finally:
        restarted.schedules.stop()
        scripted.gate.set()
        await pipelines.runs.wait_idle()


async def test_an_approver_outside_the_team_sees_the_run_but_cannot_change_it(tmp_path, webhooks):
    """erin is in ml-leads but not in data-team: asked to decide, she sees the run and its steps
    (the page the approval message links to), and decides; cancelling or repairing it stays the
    team's. bob, in neither group, still sees nothing of it."""
    from analysis_hub.pipelines.access import Caller
    from pipelines_support import BOB

    erin = Caller("erin", frozenset({"ml-leads"}))
    pipelines, _, run_id = await at_the_gate(tmp_path, webhooks)
    run, _ = pipelines.runs.get(erin, run_id, "train")
    assert (run["status"], [s["step"] for s in run["steps"]][:3]) == (
        "waiting",
        ["prepare", "train", "review"],
    )
    with pytest.raises(Forbidden):
        pipelines.runs.get(BOB, run_id)
    with pytest.raises(Forbidden):
        await pipelines.runs.cancel(erin, run_id)
    assert pipelines.runs.gates.decide(erin, run_id, "review", False, "not yet")["status"] == "rejected"
    await pipelines.runs.wait_idle()
    with pytest.raises(Forbidden):
        await pipelines.runs.repair(erin, run_id)
