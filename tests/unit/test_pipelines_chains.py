"""Chained triggers (pipelines.chains, runs._start_chained): a pipeline deployed `trigger: after`
starts when another's run ends as `after_on` says, exactly once per upstream run whichever replica
sees it end; loops are refused at deploy time, and a chain from another team needs the upstream
team's consent. Two replicas are two services on one SQLite database; the executor is scripted."""

from __future__ import annotations

import pytest
from analysis_hub.pipelines.publishing.specs import SpecError
from analysis_hub.pipelines.store.models import Pipeline, Run
from pipelines_support import ALICE, BOB, FAILED, SUCCEEDED, ScriptedExecutor, make_service, published
from workflow_support import DAVE, GATED, audit_actions, published_workflow

AFTER_A_FAILS = {"trigger": "after", "after_pipeline": "data-team/a", "after_on": "failure"}


def runs_of(pipelines, team: str, name: str) -> list[Run]:
    with pipelines.sessions() as db:
        pipeline = db.query(Pipeline).filter_by(team=team, name=name).one()
        return db.query(Run).filter_by(pipeline_id=pipeline.id).order_by(Run.id).all()


async def run_a(pipelines) -> int:
    started = await pipelines.runs.run_now(ALICE, "data-team", "a")
    await pipelines.runs.wait_idle()
    return started["id"]


async def test_a_failed_upstream_run_starts_the_chained_pipeline_exactly_once(tmp_path):
    """B runs after A fails: A's failed run starts one run of B (trigger `after`, linked to A's run
    by `upstream_run`); seeing the same end again, on this replica or on a second one sharing the
    database, starts nothing more; A's success doesn't start B."""
    scripted = ScriptedExecutor(FAILED, SUCCEEDED)
    pipelines = make_service(tmp_path, scripted)
    await published(pipelines, "a", deploy={})
    await published(pipelines, "b", deploy=AFTER_A_FAILS)
    failed = await run_a(pipelines)
    [chained] = runs_of(pipelines, "data-team", "b")
    assert (chained.trigger, chained.upstream_run, chained.status) == ("after", failed, "succeeded")
    assert chained.started_by == f"data-team/a run {failed}"
    await pipelines.runs._start_chained(failed)  # the same end seen again
    other = make_service(tmp_path, scripted, replica="second")  # another replica, same database
    await other.runs._start_chained(failed)
    await pipelines.runs.wait_idle()
    await other.runs.wait_idle()
    assert len(runs_of(pipelines, "data-team", "b")) == 1
    succeeded = await run_a(pipelines)
    assert runs_of(pipelines, "data-team", "a")[-1].status == "succeeded" and succeeded != failed
    assert len(runs_of(pipelines, "data-team", "b")) == 1


@pytest.mark.parametrize(
    ("after_on", "outcome", "starts"),
    [
        ("success", SUCCEEDED, True),
        ("success", FAILED, False),
        ("any", FAILED, True),
        ("any", SUCCEEDED, True),
    ],
)
async def test_after_on_says_which_upstream_ends_start_the_chain(tmp_path, after_on, outcome, starts):
    """`after_on: success` starts on a succeeded upstream run only, `any` on either end."""
    pipelines = make_service(tmp_path, ScriptedExecutor(outcome, SUCCEEDED))
    await published(pipelines, "a", deploy={})
    await published(pipelines, "b", deploy={**AFTER_A_FAILS, "after_on": after_on})
    await run_a(pipelines)
    assert len(runs_of(pipelines, "data-team", "b")) == (1 if starts else 0)


async def test_a_rejected_workflow_counts_as_a_failure(tmp_path):
    """A workflow rejected at its gate ends `rejected`, which `after_on: failure` chains after."""
    pipelines = make_service(tmp_path, ScriptedExecutor(outputs={"prepare": {"rows": 5}}))
    await published_workflow(pipelines, ALICE, steps=GATED, name="a", deploy={})
    await published(pipelines, "b", deploy=AFTER_A_FAILS)
    run_id = await run_a(pipelines)
    pipelines.runs.gates.decide(DAVE, run_id, "review", False)
    await pipelines.runs.wait_idle()
    assert [(r.upstream_run, r.status) for r in runs_of(pipelines, "data-team", "b")] == [
        (run_id, "succeeded")
    ]


async def test_a_loop_is_refused_at_deploy_time_with_its_path(tmp_path):
    """With B after A, deploying A after B is refused naming the loop's path, and A's deployment
    is unchanged (nothing audited); a pipeline after itself is a loop too."""
    pipelines = make_service(tmp_path, ScriptedExecutor())
    await published(pipelines, "a", deploy={})
    await published(pipelines, "b", deploy=AFTER_A_FAILS)
    audited = audit_actions(pipelines, "a")
    with pytest.raises(SpecError) as loop:
        await pipelines.deploy(ALICE, "data-team", "a", {"trigger": "after", "after_pipeline": "data-team/b"})
    assert str(loop.value) == "after_pipeline: a loop: data-team/a → data-team/b → data-team/a"
    with pytest.raises(SpecError, match="after_pipeline: a loop: data-team/a → data-team/a"):
        await pipelines.deploy(ALICE, "data-team", "a", {"trigger": "after", "after_pipeline": "data-team/a"})
    assert pipelines.summary(ALICE, "data-team", "a")["trigger"] == "manual"
    assert audit_actions(pipelines, "a") == audited


async def test_a_loop_that_slipped_past_the_check_stops_at_the_runs_own_chain(tmp_path):
    """Should two deploys racing each other make A after B after A, a run of A starts B once and
    B's run doesn't start A again: a chain never re-enters a pipeline of its own upstream runs."""
    pipelines = make_service(tmp_path, ScriptedExecutor(FAILED))
    await published(pipelines, "a", deploy={})
    await published(pipelines, "b", deploy=AFTER_A_FAILS)
    with pipelines.sessions.begin() as db:  # what the loser of the race would have stored
        a = db.query(Pipeline).filter_by(name="a").one()
        a.trigger, a.after_pipeline, a.after_on = "after", "data-team/b", "failure"
    await run_a(pipelines)
    assert (len(runs_of(pipelines, "data-team", "a")), len(runs_of(pipelines, "data-team", "b"))) == (1, 1)


async def test_a_chain_from_another_team_needs_the_upstream_teams_consent(tmp_path):
    """gpu-team can't chain after data-team/a until data-team lists it in A's `subscribers`
    (refused at deploy, naming both teams and what to do, nothing changed); once allowed, A's
    failure starts gpu-team's pipeline; withdrawn, it no longer does, and gpu-team may still
    pause its pipeline but not deploy it after A again."""
    pipelines = make_service(tmp_path, ScriptedExecutor(FAILED, SUCCEEDED))
    await published(pipelines, "a", deploy={})
    await published(pipelines, "b", team="gpu-team", deploy={})
    with pytest.raises(SpecError) as refused:
        await pipelines.deploy(BOB, "gpu-team", "b", AFTER_A_FAILS)
    assert str(refused.value) == (
        "after_pipeline: team data-team doesn't allow team gpu-team to chain after data-team/a;"
        " a member of data-team can add gpu-team to its subscribers"
    )
    assert pipelines.summary(BOB, "gpu-team", "b")["trigger"] == "manual"
    await pipelines.deploy(ALICE, "data-team", "a", {"subscribers": ["gpu-team"]})
    await pipelines.deploy(BOB, "gpu-team", "b", AFTER_A_FAILS)
    first = await run_a(pipelines)
    assert [r.upstream_run for r in runs_of(pipelines, "gpu-team", "b")] == [first]
    await pipelines.deploy(ALICE, "data-team", "a", {"subscribers": []})
    scripted = pipelines.runs.executor
    scripted.outcomes = [FAILED]
    await run_a(pipelines)
    assert len(runs_of(pipelines, "gpu-team", "b")) == 1
    # gpu-team can still pause its pipeline, but not deploy it again after A.
    assert (await pipelines.deploy(BOB, "gpu-team", "b", {"paused": True}))["paused"] is True
    with pytest.raises(SpecError, match="doesn't allow team gpu-team"):
        await pipelines.deploy(BOB, "gpu-team", "b", {"retries": 1})


async def test_an_upstream_that_does_not_exist_is_refused(tmp_path):
    """`after_pipeline` naming no pipeline is refused, saying how to write it."""
    pipelines = make_service(tmp_path, ScriptedExecutor())
    await published(pipelines, "b", deploy={})
    with pytest.raises(
        SpecError, match=r"after_pipeline: there is no pipeline 'data-team/a' \(write it as team/name\)"
    ):
        await pipelines.deploy(ALICE, "data-team", "b", AFTER_A_FAILS)


async def test_a_paused_chained_pipeline_is_not_started(tmp_path):
    """A chained pipeline that is paused doesn't start when its upstream run ends; resumed, the
    next upstream end starts it."""
    pipelines = make_service(tmp_path, ScriptedExecutor(FAILED, FAILED, SUCCEEDED))
    await published(pipelines, "a", deploy={})
    await published(pipelines, "b", deploy={**AFTER_A_FAILS, "paused": True})
    await run_a(pipelines)
    assert runs_of(pipelines, "data-team", "b") == []
    await pipelines.deploy(ALICE, "data-team", "b", {"paused": False})
    second = await run_a(pipelines)
    assert [r.upstream_run for r in runs_of(pipelines, "data-team", "b")] == [second]


async def test_an_interrupted_upstream_run_starts_the_chain_after_failure(tmp_path):
    """A's run is interrupted by a service restart (recorded failed at start): the restarted
    service's executor is told it ended (Kubernetes keeps its folder for a repair), and B, chained after
    A's failures, starts once for it."""
    stuck = ScriptedExecutor()
    stuck.gate.clear()  # A's run is in the executor when the service "stops"
    pipelines = make_service(tmp_path, stuck)
    await published(pipelines, "a", deploy={})
    await published(pipelines, "b", deploy=AFTER_A_FAILS)
    run_id = (await pipelines.runs.run_now(ALICE, "data-team", "a"))["id"]
    await stuck.entered.wait()
    after_restart = ScriptedExecutor()
    restarted = make_service(tmp_path, after_restart)
    restarted.start()
    try:
        await restarted.runs.wait_idle()
        assert runs_of(restarted, "data-team", "a")[0].status == "failed"
        assert (run_id, "failed") in after_restart.ended
        assert [(r.upstream_run, r.status) for r in runs_of(restarted, "data-team", "b")] == [
            (run_id, "succeeded")
        ]
    finally:
        restarted.schedules.stop()
        stuck.gate.set()
        await pipelines.runs.wait_idle()
