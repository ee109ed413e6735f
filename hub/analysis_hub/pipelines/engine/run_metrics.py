"""The pipelines service's metrics (names in `metrics.py`): what runs record, what the database says.

Contract:
- `record_run(run)`: a run that ended (or was skipped) counts once in
  `analysis_hub_pipeline_runs_total` with its status; one that ran observes
  its duration (first attempt to end); one the schedule started observes its
  schedule lag (first attempt minus the fire time it was scheduled for).
- `service_state(sessions)`, read at scrape time from the database (so every
  replica and every restart agree): runs not finished by status, every one of
  `statuses.UNFINISHED` (queued, running, waiting at an approval gate) with 0
  when there are none, so an alert on them always has a series; per
  deployed pipeline the time of its last success and its consecutive
  failures (the newest finished runs that failed, back to the last success).
- `MetricsHandler` serves the process's registry at `<prefix>metrics` to a
  hub token with the `read:metrics` scope, as JupyterHub's `/hub/metrics`
  does (checked by the hub: HubAuth's scopes); 403 without it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from jupyterhub.services.auth import HubOAuthenticated
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sqlalchemy import func, select
from tornado import web

from ...metrics import (
    PIPELINE_CONSECUTIVE_FAILURES,
    PIPELINE_LAST_SUCCESS,
    PIPELINE_RUN_DURATION,
    PIPELINE_RUNS,
    PIPELINE_SCHEDULE_LAG,
    PIPELINE_UNFINISHED_RUNS,
    register_state,
)
from ..statuses import UNFINISHED
from ..store.models import Pipeline, Run

RECENT = 20  # runs looked at per pipeline for consecutive failures


def record_run(run: Run) -> None:
    team, name = run.pipeline.team, run.pipeline.name
    PIPELINE_RUNS.labels(team, name, run.status).inc()
    if run.started_at and run.finished_at:
        seconds = (run.finished_at - run.started_at).total_seconds()
        PIPELINE_RUN_DURATION.labels(team, name, run.status).observe(seconds)
    if run.started_at and run.scheduled_for:
        lag = (run.started_at - run.scheduled_for).total_seconds()
        PIPELINE_SCHEDULE_LAG.labels(team, name).observe(max(lag, 0.0))


def _timestamp(moment: datetime) -> float:
    return moment.replace(tzinfo=UTC).timestamp()  # stored as naive UTC


def service_state(sessions) -> list:
    with sessions() as db:
        unfinished = dict.fromkeys(UNFINISHED, 0)
        counted = select(Run.status, func.count()).where(Run.finished_at.is_(None)).group_by(Run.status)
        unfinished.update(dict(db.execute(counted).all()))
        last_success, failing = [], []
        pipelines = db.scalars(select(Pipeline).where(Pipeline.deleted_at.is_(None)))
        for pipeline in pipelines:
            labels = (pipeline.team, pipeline.name)
            succeeded = db.scalar(
                select(func.max(Run.finished_at)).where(
                    Run.pipeline_id == pipeline.id, Run.status == "succeeded"
                )
            )
            if succeeded:
                last_success.append((labels, _timestamp(succeeded)))
            statuses = db.scalars(
                select(Run.status)
                .where(Run.pipeline_id == pipeline.id, Run.status.in_(("succeeded", "failed")))
                .order_by(Run.id.desc())
                .limit(RECENT)
            )
            streak = 0
            for status in statuses:
                if status != "failed":
                    break
                streak += 1
            failing.append((labels, streak))
    return [
        (PIPELINE_UNFINISHED_RUNS, "Runs not finished, by status (queued, running, waiting...)",
         ["status"], [((status,), count) for status, count in sorted(unfinished.items())]),
        (PIPELINE_LAST_SUCCESS, "When each pipeline's last successful run ended",
         ["team", "pipeline"], last_success),
        (PIPELINE_CONSECUTIVE_FAILURES, "The newest finished runs of each pipeline that failed in a row",
         ["team", "pipeline"], failing),
    ]  # fmt: skip


def register(sessions) -> None:
    register_state("pipelines", lambda: service_state(sessions))


class MetricsHandler(HubOAuthenticated, web.RequestHandler):
    hub_scopes = {"read:metrics"}  # only this scope admits, whatever the service's access scopes

    def get_login_url(self):
        raise web.HTTPError(403, "send a hub API token with the read:metrics scope")

    @web.authenticated
    def get(self):
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(generate_latest(REGISTRY))
