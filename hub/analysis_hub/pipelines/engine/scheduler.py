"""The `cron` trigger: APScheduler jobs that mirror the deployments in the database (I/O: timers).

Contract:
- The database is the truth. There is one job per pipeline that is deployed,
  not paused, not deleted and whose trigger is `cron`, built from its
  schedule and time zone; no job for any other pipeline.
- `start(sessions)` registers every such pipeline from the database, so
  schedules survive restarts of the hub and of this service and keep running
  while their authors' servers are culled. `sync(pipeline)` makes one
  pipeline's job match its row after any change (deploy, pause, resume,
  delete); callers call it after the change is committed. A job whose
  trigger is unchanged is kept as it is.
- When a job fires, `fire(pipeline_id)` starts a run with trigger `cron`
  through the `start_run` it was given, for the schedule's fire time, unless
  another replica sharing the database already did (replicas.py); the run's
  own concurrency policy decides whether it runs or is recorded as skipped.
  A run that can't start is logged and never stops the scheduler.
- `next_run(pipeline_id)` is the job's next fire time (None when there is no
  job or the scheduler isn't running).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import select

from ..publishing.cron_words import cron_trigger
from ..store.models import Pipeline
from ..triggers import CRON
from . import replicas

log = logging.getLogger(__name__)

SCHEDULER = "schedule"  # the `started_by` of a run the schedule started


def job_id(pipeline_id: int) -> str:
    return f"pipeline-{pipeline_id}"


class Schedules:
    def __init__(self, *, start_run: Callable[..., Awaitable]):
        self.start_run = start_run
        self.scheduler = AsyncIOScheduler()

    def start(self, sessions) -> None:
        """Start the timers (in the running event loop) with every schedule the database holds."""
        self.sessions = sessions
        with sessions() as db:
            pipelines = list(db.scalars(select(Pipeline).where(Pipeline.deleted_at.is_(None))))
        self.scheduler.start()
        for pipeline in pipelines:
            self.sync(pipeline)

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def sync(self, pipeline: Pipeline) -> None:
        job = self.scheduler.get_job(job_id(pipeline.id))
        scheduled = not (
            pipeline.deleted_at or pipeline.paused or pipeline.trigger != CRON or not pipeline.deployed
        )
        trigger = cron_trigger(pipeline.schedule, timezone=pipeline.timezone) if scheduled else None
        if job and trigger and repr(job.trigger) == repr(trigger):
            return  # unchanged: re-adding it now could skip a fire that is due this instant
        if job:
            self.scheduler.remove_job(job_id(pipeline.id))
        if trigger is None:
            return
        self.scheduler.add_job(
            self.fire,
            trigger,
            id=job_id(pipeline.id),
            args=[pipeline.id],
            coalesce=True,
            misfire_grace_time=replicas.MISFIRE_GRACE_S,
            max_instances=100,  # our own concurrency policy decides, and records skips
        )

    async def fire(self, pipeline_id: int) -> None:
        """A schedule fired: start the pipeline's run unless another replica did for this fire time.
        The one place a scheduled run begins."""
        await replicas.fire_once(
            self.sessions,
            pipeline_id,
            lambda at: self.start_run(pipeline_id, CRON, SCHEDULER, scheduled_for=at),
        )

    def next_run(self, pipeline_id: int) -> datetime | None:
        job = self.scheduler.get_job(job_id(pipeline_id)) if self.scheduler.running else None
        return job.next_run_time if job else None
