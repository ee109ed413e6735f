"""replicas.py without servers: the fire time every replica computes, and whose runs a replica may end.

The runs' table is a real SQLite database migrated by the real migrations
(PostgreSQL's behaviour is tested in tests/integration).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import pytest
from analysis_hub.pipelines.engine import replicas
from analysis_hub.pipelines.engine.replicas import fire_time
from analysis_hub.pipelines.store.models import Pipeline, Replica, Run, now, open_database
from pipelines_support import ScriptedExecutor, make_service, published


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("schedule", "timezone", "at", "expected"),
    [
        ("* * * * *", "UTC", utc(2026, 12, 2, 14, 5, 0, 3000), datetime(2026, 12, 2, 14, 5)),
        # a busy replica firing late still claims the minute it stands for
        ("* * * * *", "UTC", utc(2026, 12, 2, 14, 5, 42), datetime(2026, 12, 2, 14, 5)),
        ("*/15 * * * *", "UTC", utc(2026, 12, 2, 14, 15, 59), datetime(2026, 12, 2, 14, 15)),
        # a job that lags a redeploy: the schedule has no fire time now
        ("*/15 * * * *", "UTC", utc(2026, 12, 2, 14, 16, 30), None),
        ("0 6 * * *", "UTC", utc(2026, 12, 2, 14, 5), None),
        # the pipeline's time zone: 06:00 in Berlin in December is 05:00 UTC, kept as naive UTC
        ("0 6 * * *", "Europe/Berlin", utc(2026, 12, 2, 5, 0, 1), datetime(2026, 12, 2, 5, 0)),
    ],
)
def test_a_job_firing_now_stands_for_the_schedules_latest_fire_time(schedule, timezone, at, expected):
    assert fire_time(schedule, timezone, at) == expected


def test_replicas_with_different_timer_jitter_claim_the_same_fire_time():
    """The claim's key is the schedule's time, not each replica's clock: 10 ms and 4 s late agree."""
    minute = utc(2026, 12, 2, 14, 5)
    assert fire_time("* * * * *", "UTC", minute + timedelta(milliseconds=10)) == fire_time(
        "* * * * *", "UTC", minute + timedelta(seconds=4)
    )


@pytest.fixture
def sessions(tmp_path):
    sessions = open_database(f"sqlite:///{tmp_path / 'p.sqlite'}")
    with sessions.begin() as db:
        db.add(Pipeline(id=1, team="t", name="p", created_by="a", parameters={}))
        for replica in ("a", "b", "c", None):
            db.add(
                Run(
                    pipeline_id=1,
                    version=1,
                    trigger="manual",
                    started_by="x",
                    status="running",
                    replica=replica,
                )
            )
        db.add(
            Run(pipeline_id=1, version=1, trigger="manual", started_by="x", status="succeeded", replica="a")
        )
    return sessions


def statuses(sessions) -> dict:
    with sessions() as db:
        return {(r.replica, r.status) for r in db.query(Run)}


def test_a_restarting_replica_ends_only_its_own_and_unowned_runs(sessions):
    """replica a restarts: its unfinished run and the one from before replicas were recorded were
    interrupted; b's and c's go on; a finished run is left as it was."""
    with sessions.begin() as db:
        replicas.recover(db, "a")
    assert statuses(sessions) == {
        ("a", "failed"),
        ("a", "succeeded"),
        (None, "failed"),
        ("b", "running"),
        ("c", "running"),
    }


def test_a_heartbeat_ends_the_runs_of_silent_replicas_only(sessions):
    """b was last seen longer ago than STALE, c just now: a's heartbeat ends b's run, not c's nor its own."""
    with sessions.begin() as db:
        db.add(Replica(name="b", seen_at=now() - replicas.STALE - timedelta(seconds=1)))
        db.add(Replica(name="c", seen_at=now()))
    replicas.beat(sessions, "a")
    assert ("b", "failed") in statuses(sessions)
    assert {("a", "running"), ("c", "running")} <= statuses(sessions)
    with sessions() as db:
        reason = db.query(Run).filter(Run.replica == "b").one().reason
        assert reason == "interrupted: the pipelines service replica b stopped during the run"
        assert db.get(Replica, "a") is not None


async def test_of_two_replicas_firing_one_minute_the_second_does_nothing(tmp_path, caplog):
    """Two service objects on one database, each with the schedule's job, fire the same minute: one run
    is recorded, by the first; the second finds it claimed, logs whose it is and raises nothing."""
    executor = ScriptedExecutor()
    caplog.set_level(logging.INFO, logger="analysis_hub.pipelines.engine.replicas")
    a, b = (make_service(tmp_path, executor, replica=name) for name in ("a", "b"))
    await published(a, name="daily", deploy={"schedule": "* * * * *"})
    a.start()
    b.start()
    try:
        while datetime.now(UTC).second >= 58:  # both fires within one minute
            time.sleep(0.2)
        for replica in (a, b):
            [job] = replica.schedules.scheduler.get_jobs()
            await job.func(*job.args)
        await a.runs.wait_idle()
        with a.sessions() as db:
            [run] = db.query(Run).all()
        assert (run.replica, run.status, run.trigger) == ("a", "succeeded", "cron")
        assert f"run {run.id} was started by replica a" in caplog.text
        assert "could not start" not in caplog.text
    finally:
        a.schedules.stop()
        b.schedules.stop()
