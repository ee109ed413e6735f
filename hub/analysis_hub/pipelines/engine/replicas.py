"""Several pipelines service replicas on one database: each scheduled fire runs once, none is lost (I/O).

Contract:
- Every replica keeps an APScheduler job for every schedule, so losing a
  replica loses no fire. When the job fires, `fire_once` starts the run with
  `scheduled_for` set to the fire time (`fire_time`, pure): the same value on
  every replica, whatever each one's timer jitter. The run row is the claim:
  runs have one row at most per (pipeline_id, scheduled_for) (a unique
  constraint), so of the replicas firing the same minute exactly one inserts
  the run, with its audit event, in one transaction; the others' insert hits
  the constraint and they log it and do nothing. Claim and run being one row,
  no replica can win a fire and die before recording its run.
- A job may lag a change made through another replica: `fire_once` re-reads
  the pipeline and does nothing when it is paused, deleted, no longer on a
  schedule, or when its schedule has no fire time at this moment.
- Each run records the replica that follows it. `recover(db, name)`, at a
  replica's start, marks interrupted the runs its previous incarnation left
  unfinished (and those recorded before replicas were), never another
  live replica's. `beat(sessions, name)` records that a replica is alive and
  marks interrupted the unfinished runs of replicas silent for longer than
  `STALE` (a pod replaced under another name never comes back for them).
  The local executor's runs are child processes of their replica and end
  with it, so interrupted is their true state.
- `keep_in_step(pipelines)` runs in each service process: every `STEP_S`
  seconds, a heartbeat, the scheduler's jobs made to match the database
  (deploys, pauses and deletions made through another replica), and the
  approval gates past their deadline rejected (`gates.Gates.expire`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from ..publishing.cron_words import cron_trigger
from ..statuses import ACTIVE
from ..store.models import Pipeline, Replica, Run, now
from ..triggers import CRON

log = logging.getLogger(__name__)

MISFIRE_GRACE_S = 60  # a fire may start this late (a busy event loop) and still run
STEP_S = 10
STALE = timedelta(seconds=6 * STEP_S)  # silent this long: dead (clocks may differ by less)


def fire_time(schedule: str, timezone: str, at: datetime) -> datetime | None:
    """The schedule's latest fire time at or before `at` (aware), within the misfire grace; else None.

    Returned as naive UTC, as the database keeps times."""
    trigger = cron_trigger(schedule, timezone=timezone)
    latest, candidate = None, trigger.get_next_fire_time(None, at - timedelta(seconds=MISFIRE_GRACE_S + 1))
    while candidate is not None and candidate <= at:
        latest, candidate = candidate, trigger.get_next_fire_time(candidate, candidate)
    return latest.astimezone(UTC).replace(tzinfo=None) if latest else None


async def fire_once(sessions, pipeline_id: int, start: Callable[[datetime], Awaitable]) -> None:
    """A schedule's job fired on this replica: start the run for this fire time unless another replica did.

    `start(scheduled_for)` creates the run and returns it as a dict (runs.Runs.start)."""
    with sessions() as db:
        p = db.get(Pipeline, pipeline_id)
        scheduled = p and not p.deleted_at and not p.paused and p.trigger == CRON and p.deployed
        at = fire_time(p.schedule, p.timezone, datetime.now(UTC)) if scheduled else None
    if at is None:
        log.info("pipeline %s: this replica's job is out of date; the next sync removes it", pipeline_id)
        return
    try:
        run = await start(at)
        log.info("pipeline %s at %s: run %s started by this replica", pipeline_id, at, run["id"])
        return
    except IntegrityError:
        with sessions() as db:
            query = select(Run.id, Run.replica).where(Run.pipeline_id == pipeline_id, Run.scheduled_for == at)
            winner = db.execute(query).first()
        if winner is None:  # some other constraint: a real error
            log.exception("scheduled run of pipeline %s could not start", pipeline_id)
        else:
            log.info(
                "pipeline %s at %s: run %s was started by replica %s",
                pipeline_id,
                at,
                winner.id,
                winner.replica,
            )
    except Exception:
        log.exception("scheduled run of pipeline %s could not start", pipeline_id)


def recover(db, name: str) -> list[int]:
    """At start: this replica's earlier incarnation's unfinished runs (and unowned ones) were
    interrupted (their ids)."""
    mine = or_(Run.replica == name, Run.replica.is_(None))
    interrupted = []
    for run in db.scalars(select(Run).where(Run.status.in_(ACTIVE), mine)):
        _interrupt(run, "interrupted: the pipelines service stopped during the run")
        interrupted.append(run.id)
    _seen(db, name, started=True)
    return interrupted


def beat(sessions, name: str) -> list[int]:
    """This replica is alive; runs of replicas silent for longer than STALE are interrupted (their ids)."""
    with sessions.begin() as db:
        _seen(db, name)
        alive = select(Replica.name).where(Replica.seen_at >= now() - STALE)
        orphaned = select(Run).where(
            Run.status.in_(ACTIVE), Run.replica.is_not(None), Run.replica.not_in(alive)
        )
        interrupted = []
        for run in db.scalars(orphaned):
            _interrupt(
                run, f"interrupted: the pipelines service replica {run.replica} stopped during the run"
            )
            interrupted.append(run.id)
    if interrupted:
        log.warning("runs %s: their replicas stopped; marked interrupted", interrupted)
    return interrupted


def _interrupt(run: Run, reason: str) -> None:
    """A run and the steps it was running failed (a repair re-runs them); a waiting run is
    not interrupted: it holds nothing, and a decision resumes it on any replica."""
    run.status, run.finished_at, run.reason = "failed", now(), reason
    for step in run.steps:
        if step.status == "running":
            step.status, step.finished_at, step.reason = "failed", now(), reason
        elif step.status == "waiting":  # a gate beside the interrupted branch: nobody decides now
            step.status, step.finished_at, step.reason = "cancelled", now(), reason


def _seen(db, name: str, started: bool = False) -> None:
    row = db.get(Replica, name)
    if row is None:
        db.add(Replica(name=name))
    else:
        row.seen_at = now()
        if started:
            row.started_at = row.seen_at


def _schedule_facts(p: Pipeline) -> tuple:
    """What decides a pipeline's job (scheduler.Schedules.sync reads the same fields)."""
    return (p.deleted_at, p.paused, p.trigger, p.schedule, p.timezone, p.active_version is None)


async def keep_in_step(pipelines) -> None:
    """Forever: heartbeats, and the jobs following changes other replicas made (after `start()`)."""
    with pipelines.sessions() as db:
        known = {p.id: _schedule_facts(p) for p in db.scalars(select(Pipeline))}
    while True:
        await asyncio.sleep(STEP_S)
        try:
            interrupted = await asyncio.to_thread(beat, pipelines.sessions, pipelines.config.replica)
            await pipelines.runs.ended_elsewhere(interrupted)
            pipelines.runs.gates.expire()
            with pipelines.sessions() as db:
                for p in db.scalars(select(Pipeline)):
                    facts = _schedule_facts(p)
                    if known.get(p.id) != facts:
                        known[p.id] = facts
                        pipelines.schedules.sync(p)
                        log.info("pipeline %s/%s: schedule synced from the database", p.team, p.name)
        except Exception:
            log.exception("keeping this replica in step with the database failed; retrying")
