"""Two real pipelines service replicas on one PostgreSQL: a schedule runs once a minute, never twice,
and keeps running when a replica dies.

Two `python -m analysis_hub.pipelines` processes (replica-a, replica-b) share
a PostgreSQL database (Debian's server, started by the tests) and a data
folder. The test publishes and deploys through the service's own objects in
the test process, a third participant whose scheduler never runs, so the
replicas learn of the schedule from the database, as of a deploy made through
another replica. The notebook sleeps 20 s: a replica killed right after
starting a run dies during it. The waits follow real minutes (< 2.5 min).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from harness import make_workdir
from notebooks import make_notebook
from pipeline_replicas import ALICE, ServiceReplica, in_process, service_settings, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.integration]

SLEEPY = make_notebook("import time\ntime.sleep(seconds)", parameters="seconds = 20")
TEAM, NAME = "data-team", "every-minute"


def runs(url: str) -> list:
    engine = sa.create_engine(url)
    with engine.connect() as db:
        rows = db.execute(
            sa.text("SELECT id, scheduled_for, replica, status, reason FROM runs ORDER BY id")
        ).all()
    engine.dispose()
    return rows


async def publish_on_every_minute(admin) -> None:
    await admin.versions.publish(ALICE, TEAM, NAME, json.dumps(SLEEPY), "pyspark")
    await admin.deploy(ALICE, TEAM, NAME, {"schedule": "* * * * *", "concurrency": "allow"})


def minute_after(moment: datetime) -> datetime:
    """The next whole minute after `moment`, as naive UTC (as the database keeps times)."""
    return moment.astimezone(UTC).replace(tzinfo=None, second=0, microsecond=0) + timedelta(minutes=1)


def claims(replicas: list[ServiceReplica], minute: datetime) -> dict[str, str] | None:
    """Each replica's outcome for the fire at `minute` ('started' or the winner's name), once all have one."""
    outcomes = {}
    for replica in replicas:
        replica.alive()
        found = re.search(
            rf"pipeline \d+ at {minute}: run \d+ (started by this replica|was started by replica (\S+))",
            replica.log(),
        )
        if found is None:
            return None
        outcomes[replica.name] = found.group(2) or "started"
    return outcomes


@pytest.fixture
def replicas(postgres_url):
    workdir = make_workdir()
    started = [
        ServiceReplica(workdir, service_settings(workdir, postgres_url, name)).start() for name in "ab"
    ]
    try:
        yield workdir, [replica.ready() for replica in started]
    finally:  # a replica that never got ready must not outlive the test either
        for replica in started:
            replica.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def test_two_replicas_run_each_minute_once_and_keep_it_when_one_dies(replicas, postgres_url):
    """Both replicas fire the same minute: one starts the run, the other sees the claim and does nothing;
    exactly one run exists for the minute. Killed, the winner's minute after is fired by the other replica,
    once; and the dead replica's interrupted run is marked so by the live one, which never touched it
    while its owner was alive."""
    workdir, (a, b) = replicas
    admin = in_process(service_settings(workdir, postgres_url, "test-admin"))
    asyncio.run(publish_on_every_minute(admin))
    synced = f"pipeline {TEAM}/{NAME}: schedule synced"
    wait_for(lambda: synced in a.log() and synced in b.log(), 30, "both replicas taking the schedule")

    first = minute_after(datetime.now(UTC))
    outcome = wait_for(lambda: claims([a, b], first), 100, f"both replicas firing {first}")
    [winner_name] = [name for name, result in outcome.items() if result == "started"]
    loser_name = next(name for name in outcome if name != winner_name)
    assert outcome[loser_name] == winner_name
    [(run_id, _, replica, _, _)] = [r for r in runs(postgres_url) if r.scheduled_for == first]
    assert replica == winner_name

    winner, survivor = (a, b) if winner_name == a.name else (b, a)
    winner.kill()
    second = first + timedelta(minutes=1)
    assert wait_for(lambda: claims([survivor], second), 100, f"{survivor.name} firing {second}") == {
        survivor.name: "started"
    }
    assert [r.replica for r in runs(postgres_url) if r.scheduled_for == second] == [survivor.name]

    def interrupted():
        return next(r for r in runs(postgres_url) if r.id == run_id).status == "failed"

    wait_for(interrupted, 120, f"run {run_id} of the dead {winner.name} marked interrupted")
    dead_run = next(r for r in runs(postgres_url) if r.id == run_id)
    assert (
        dead_run.reason == f"interrupted: the pipelines service replica {winner.name} stopped during the run"
    )
    assert [r.scheduled_for for r in runs(postgres_url)] == [first, second]
    for replica in (a, b):
        assert "could not start" not in replica.log() and "Traceback" not in replica.log()
