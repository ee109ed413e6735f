"""Benchmark: the schedule's dispatch delay with two service replicas on PostgreSQL, and a replica's loss.

    .venv/bin/python tests/benchmarks/replicas.py [--ticks 3] [--after-kill 1]

Starts a throwaway PostgreSQL (tests/postgres.py) and two real service
replicas (`python -m analysis_hub.pipelines`) on it, publishes a notebook that
sleeps 20 s on the pyspark profile and deploys it on `* * * * *`.

1. Dispatch delay: for each of `--ticks` minutes, the run row's `created_at`
   minus its `scheduled_for` (the minute it stands for), as the winning
   replica recorded it. The loser's attempt is counted too.
2. A replica's loss: the winner of the last tick is killed (SIGKILL, its
   run's processes with it); for `--after-kill` more minutes, the survivor's
   dispatch delay; then the time from the kill until the survivor marks the
   dead replica's run interrupted (the heartbeat's STALE plus one step).

There is no lease to hand over: both replicas keep every schedule and the
database's unique (pipeline, fire time) decides each minute, so the
"handover" is the next minute's dispatch by the survivor, measured in 2.

Prints a table and writes tests/benchmarks/results/replicas-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import statistics
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa
from harness import make_workdir
from notebooks import make_notebook
from pipeline_replicas import ALICE, ServiceReplica, in_process, service_settings, wait_for
from postgres import PostgresCluster

RESULTS = Path(__file__).parent / "results"
SLEEPY = make_notebook("import time\ntime.sleep(seconds)", parameters="seconds = 20")


async def publish_on_every_minute(admin) -> None:
    await admin.versions.publish(ALICE, "data-team", "tick", json.dumps(SLEEPY), "pyspark")
    await admin.deploy(ALICE, "data-team", "tick", {"schedule": "* * * * *", "concurrency": "allow"})


def run_rows(url: str) -> list:
    engine = sa.create_engine(url)
    with engine.connect() as db:
        rows = db.execute(
            sa.text(
                "SELECT id, scheduled_for, created_at, finished_at, replica, status FROM runs ORDER BY id"
            )
        ).all()
    engine.dispose()
    return rows


def tick(url: str, minute: datetime, replicas: list[ServiceReplica]) -> dict:
    """Wait for every live replica to have fired `minute`; the run's delay and who won."""
    pattern = rf"at {minute}: run \d+ (started by this replica|was started by replica)"
    wait_for(lambda: all(re.search(pattern, r.log()) for r in replicas), 130, f"the fire at {minute}")
    [row] = [r for r in run_rows(url) if r.scheduled_for == minute]
    return {
        "minute": minute.isoformat(),
        "run": row.id,
        "replica": row.replica,
        "dispatch_delay_s": round((row.created_at - row.scheduled_for).total_seconds(), 3),
        "replicas_firing": len(replicas),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ticks", type=int, default=3)
    parser.add_argument("--after-kill", type=int, default=1)
    args = parser.parse_args()
    cluster = PostgresCluster().start()
    workdir = make_workdir()
    url = cluster.database("bench")
    replicas = [ServiceReplica(workdir, service_settings(workdir, url, f"r{i}")).start() for i in (1, 2)]
    try:
        for replica in replicas:
            replica.ready()
        admin = in_process(service_settings(workdir, url, "bench-admin"))
        asyncio.run(publish_on_every_minute(admin))
        synced = "pipeline data-team/tick: schedule synced"
        wait_for(lambda: all(synced in r.log() for r in replicas), 30, "the replicas taking the schedule")
        minute = datetime.now(UTC).replace(tzinfo=None, second=0, microsecond=0) + timedelta(minutes=1)
        ticks = []
        for _ in range(args.ticks):
            ticks.append(tick(url, minute, replicas))
            minute += timedelta(minutes=1)
        winner = next(r for r in replicas if r.name == ticks[-1]["replica"])
        killed_run = ticks[-1]["run"]
        killed_at = datetime.now(UTC).replace(tzinfo=None)  # as the database keeps times
        winner.kill()
        survivors = [r for r in replicas if r is not winner]
        for _ in range(args.after_kill):
            ticks.append(tick(url, minute, survivors))
            minute += timedelta(minutes=1)

        def interrupted():
            return next(r for r in run_rows(url) if r.id == killed_run).status == "failed"

        wait_for(interrupted, 180, f"run {killed_run} marked interrupted")
        finished = next(r for r in run_rows(url) if r.id == killed_run).finished_at
        interrupted_after = round((finished - killed_at).total_seconds(), 1)
    finally:
        for replica in replicas:
            replica.stop()
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    delays = [t["dispatch_delay_s"] for t in ticks]
    result = {
        "ticks": ticks,
        "dispatch_delay_s": {"p50": statistics.median(delays), "max": max(delays), "n": len(delays)},
        "dead_replica_run_interrupted_after_s": interrupted_after,
    }
    print(f"{'minute (UTC)':22}{'replicas':>9}{'winner':>8}{'delay (s)':>11}")
    for t in ticks:
        print(f"{t['minute']:22}{t['replicas_firing']:>9}{t['replica']:>8}{t['dispatch_delay_s']:>11}")
    print(
        f"dispatch delay p50 {result['dispatch_delay_s']['p50']} s, max {result['dispatch_delay_s']['max']} s"
    )
    print(f"the killed replica's run marked interrupted {interrupted_after} s after the kill")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"replicas-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
