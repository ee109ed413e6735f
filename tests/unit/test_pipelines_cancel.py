"""Cancelling a run (pipelines.runs.cancel): who may, what a finished run answers, what is recorded,
and that the executor is told (with the scripted executor holding the run "running")."""

from __future__ import annotations

import asyncio

import pytest
from analysis_hub.pipelines.access import Conflict, Forbidden
from pipelines_support import ALICE, BOB, ScriptedExecutor, make_service, published


class CancellableExecutor(ScriptedExecutor):
    """The scripted executor with its own `cancel(run_id)` (as the Kubernetes one has), which it records."""

    def __init__(self):
        super().__init__()
        self.cancelled: list[int] = []

    async def cancel(self, run_id: int) -> bool:
        self.cancelled.append(run_id)
        return True


@pytest.fixture
async def held(tmp_path):
    """A service whose executor holds every run at its gate, with one run of data-team/report running."""
    executor = CancellableExecutor()
    executor.gate.clear()
    pipelines = make_service(tmp_path, executor)
    pipelines.start()
    await published(pipelines, deploy={})
    run = await pipelines.runs.run_now(ALICE, "data-team", "report")
    await executor.entered.wait()
    yield pipelines, executor, run
    executor.gate.set()
    await pipelines.runs.wait_idle()
    pipelines.schedules.stop()


async def test_a_member_cancels_a_running_run_and_it_stays_cancelled(held):
    """alice cancels her running run: it is recorded cancelled by alice, the executor's cancel is
    called, the run's task ends without overwriting the record, and the audit has the event."""
    pipelines, executor, run = held
    answer = await pipelines.runs.cancel(ALICE, run["id"])
    assert (answer["status"], answer["reason"]) == ("cancelled", "cancelled by alice") and answer["finished"]
    await pipelines.runs.wait_idle()
    recorded = pipelines.runs.get(ALICE, run["id"])[0]
    assert (recorded["status"], recorded["reason"]) == ("cancelled", "cancelled by alice")
    assert executor.cancelled == [run["id"]]
    [event] = [e for e in pipelines.audit(ALICE, "data-team") if e["action"] == "cancel"]
    assert (event["actor"], event["before"]["status"], event["after"]) == (
        "alice",
        "running",
        {"run": run["id"], "status": "cancelled"},
    )


async def test_another_team_cannot_cancel_and_a_finished_run_is_a_conflict(held):
    """bob (gpu-team) is refused and the run keeps running; once cancelled, cancelling again is a
    Conflict naming the run's status."""
    pipelines, executor, run = held
    with pytest.raises(Forbidden):
        await pipelines.runs.cancel(BOB, run["id"])
    assert pipelines.runs.get(ALICE, run["id"])[0]["status"] == "running" and executor.cancelled == []
    await pipelines.runs.cancel(ALICE, run["id"])
    with pytest.raises(Conflict, match="already finished \\(cancelled\\)"):
        await pipelines.runs.cancel(ALICE, run["id"])


class StoppableExecutor(ScriptedExecutor):
    """The scripted executor, recording the runs whose attempt was cancelled (stopped) inside it."""

    def __init__(self):
        super().__init__()
        self.stopped: list[int] = []

    async def run(self, spec, notebook, out_dir):
        try:
            return await super().run(spec, notebook, out_dir)
        except asyncio.CancelledError:
            self.stopped.append(spec.run_id)
            raise


async def test_a_cancel_through_another_replica_stops_the_run_where_it_runs(tmp_path):
    """Two services on one database (replicas): alice cancels through the one that doesn't follow
    the run; the one that does stops its executor's attempt and keeps the record cancelled."""
    here, there = StoppableExecutor(), StoppableExecutor()
    here.gate.clear()
    following = make_service(tmp_path, here)
    following.start()
    other = make_service(tmp_path, there)
    await published(following, deploy={})
    run = await following.runs.run_now(ALICE, "data-team", "report")
    await here.entered.wait()
    await other.runs.cancel(ALICE, run["id"])
    # It ends only once the attempt is stopped (the gate stays shut); a minute means it never will.
    await asyncio.wait_for(following.runs.wait_idle(), 60)
    assert here.stopped == [run["id"]] and there.stopped == []
    recorded = following.runs.get(ALICE, run["id"])[0]
    assert (recorded["status"], recorded["reason"]) == ("cancelled", "cancelled by alice")
    following.schedules.stop()
