"""Runs: start one, apply the concurrency policy, execute it with retries, record it, notify.

Contract:
- `start(pipeline_id, trigger, actor, parameters)` records a run of the
  pipeline's active version with its parameters (the version's defaults <
  the deployment's overrides < this run's, typed) and an audit event, and
  returns it at once. With concurrency `forbid` and a run still queued or
  running, the new run is recorded as `skipped` with the reason and nothing
  executes; otherwise it executes in the background.
- Executing hands the run's `RunSpec` and notebook to the `Executor`
  (`executor.py`), which leaves the run's files in `<runs_root>/<id>/`; a
  run that doesn't succeed is tried again up to the deployment's `retries`,
  and the last attempt's outcome is recorded (status, exit code, reason,
  error cell, attempts). An executor that raises fails the run with the
  error; a run is never left `running` by a bug.
- When it finishes, a webhook (`notify_url`) gets a message (`notify.py`)
  on failure, and on success too if the deployment asks.
- `run_now` (a team member, trigger `manual`) and `run_by_http_trigger` (the
  pipeline's token, trigger `http`) are the callers' ways in; the schedule
  calls `start` itself (`scheduler.py`).
- `cancel(caller, run_id)` (a team member) stops a queued or running run:
  the executor's own `cancel(run_id)` when it has one (Argo), and the run's
  task here (the local executor kills papermill's processes on
  cancellation, the docker one removes its container); the run is recorded
  `cancelled` with who cancelled it, and audited (`cancel`); it answers once
  the run's task has ended. A finished run
  is a Conflict. A cancelled run is never overwritten by its late outcome.
  The replica that follows the run notices a cancel made through another
  one within `CANCEL_POLL_S` and stops its executor the same way.
- `recover()`, at start, fails the runs this replica's previous process left
  unfinished (never another live replica's: replicas.py). Each run records
  the replica that started it.
- Every run that ends or is skipped is counted (`run_metrics.record_run`).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from sqlalchemy import func, select

from . import notify, replicas
from .access import Caller, Conflict, find_pipeline, find_run, pipeline_for_token
from .executor import Executor, RunOutcome
from .models import UNFINISHED, AuditEvent, Pipeline, Run, now
from .run_metrics import record_run
from .specs import SpecError, declared_parameters, run_parameters, run_spec
from .triggers import HTTP, MANUAL
from .versions import Versions, find_version
from .views import run_view

log = logging.getLogger(__name__)

CANCEL_POLL_S = 2.0  # how soon a run cancelled through another replica stops on this one
HTTP_TRIGGER = "http-trigger"  # the `started_by` of a run started with a trigger token


def recent_runs(db, pipeline: Pipeline, limit: int) -> list[Run]:
    query = select(Run).where(Run.pipeline_id == pipeline.id).order_by(Run.id.desc()).limit(limit)
    return list(db.scalars(query))


class Runs:
    def __init__(
        self,
        *,
        sessions,
        versions: Versions,
        executor: Executor,
        runs_root: Path,
        public_url: str,
        replica: str = "local",
    ):
        self.sessions = sessions
        self.versions = versions
        self.executor = executor
        self.runs_root = runs_root
        self.public_url = public_url.rstrip("/")
        self.replica = replica  # this process's name among replicas sharing the database
        self._tasks: set[asyncio.Task] = set()
        self._by_run: dict[int, asyncio.Task] = {}

    def recover(self) -> None:
        with self.sessions.begin() as db:
            replicas.recover(db, self.replica)  # never another live replica's runs

    # -- reading ------------------------------------------------------------

    def history(self, caller: Caller, team: str, name: str, limit: int = 500) -> list[dict]:
        with self.sessions() as db:
            return [run_view(r) for r in recent_runs(db, find_pipeline(db, caller, team, name), limit)]

    def get(self, caller: Caller, run_id: int) -> tuple[dict, Path]:
        """A run as the API shows it, and its folder of files."""
        with self.sessions() as db:
            run = find_run(db, caller, run_id)
            view = {**run_view(run), "team": run.pipeline.team, "pipeline": run.pipeline.name}
        return view, self.runs_root / str(run_id)

    # -- starting -----------------------------------------------------------

    async def run_now(self, caller: Caller, team: str, name: str, parameters: dict | None = None) -> dict:
        with self.sessions() as db:
            pipeline_id = find_pipeline(db, caller, team, name).id
        return await self.start(pipeline_id, MANUAL, caller.name, parameters)

    async def run_by_http_trigger(
        self, team: str, name: str, token: str, parameters: dict | None = None
    ) -> dict:
        with self.sessions() as db:
            pipeline_id = pipeline_for_token(db, team, name, token).id
        return await self.start(pipeline_id, HTTP, HTTP_TRIGGER, parameters)

    async def start(
        self, pipeline_id: int, trigger: str, actor: str, parameters: dict | None = None, scheduled_for=None
    ) -> dict:
        with self.sessions.begin() as db:
            pipeline = db.get(Pipeline, pipeline_id)
            if not pipeline.deployed:
                raise SpecError(f"{pipeline.team}/{pipeline.name} is not deployed; deploy a version first")
            version = find_version(pipeline, pipeline.active_version)
            values = run_parameters(
                declared_parameters(version.parameters), pipeline.parameters, parameters or {}
            )
            run = Run(
                pipeline_id=pipeline.id,
                version=version.number,
                trigger=trigger,
                started_by=actor,
                parameters=values,
                scheduled_for=scheduled_for,
                replica=self.replica,
            )
            busy = db.scalar(
                select(func.count()).where(Run.pipeline_id == pipeline.id, Run.status.in_(UNFINISHED))
            )
            if busy and pipeline.concurrency == "forbid":
                run.status, run.finished_at = "skipped", now()
                run.reason = "skipped: the previous run is still going (concurrency: forbid)"
            db.add(run)
            db.flush()
            if run.status == "skipped":
                record_run(run)
            after = {"run": run.id, "version": version.number, "trigger": trigger, "status": run.status}
            db.add(
                AuditEvent(actor=actor, action="run", team=pipeline.team, pipeline=pipeline.name, after=after)
            )
            result = run_view(run)
        if result["status"] == "queued":
            task = asyncio.create_task(self._execute(result["id"]))
            self._tasks.add(task)
            self._by_run[result["id"]] = task
            task.add_done_callback(self._tasks.discard)
            task.add_done_callback(lambda _, run_id=result["id"]: self._by_run.pop(run_id, None))
        return result

    async def cancel(self, caller: Caller, run_id: int) -> dict:
        with self.sessions.begin() as db:
            run = find_run(db, caller, run_id)
            if run.status not in UNFINISHED:
                raise Conflict(f"run {run_id} has already finished ({run.status})")
            before = {"run": run_id, "status": run.status}
            run.status, run.finished_at = "cancelled", now()
            run.reason = f"cancelled by {caller.name}"
            db.add(
                AuditEvent(
                    actor=caller.name,
                    action="cancel",
                    team=run.pipeline.team,
                    pipeline=run.pipeline.name,
                    before=before,
                    after={"run": run_id, "status": "cancelled"},
                )
            )
            record_run(run)
            result = run_view(run)
        stop = getattr(self.executor, "cancel", None)
        if stop is not None:
            try:
                await stop(run_id)
            except Exception:  # the run is recorded cancelled; the task below is cancelled anyway
                log.exception("run %s: the executor could not cancel it", run_id)
        task = self._by_run.get(run_id)
        if task is not None:
            task.cancel()
            # Answer once the executor has stopped what it started (processes, a container).
            await asyncio.wait({task})
        return result

    async def wait_idle(self) -> None:
        """Wait for every run this process started to be recorded (tests; a clean stop)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- executing ----------------------------------------------------------

    async def _run_until_cancelled(self, run_id: int, spec, notebook: str, out_dir: Path):
        """The executor's outcome, or None once the run is recorded cancelled by another replica
        (checked every CANCEL_POLL_S; a cancel through this one cancels the task at once)."""
        attempt = asyncio.ensure_future(self.executor.run(spec, notebook, out_dir))
        try:
            while True:
                done, _ = await asyncio.wait({attempt}, timeout=CANCEL_POLL_S)
                if done:
                    return attempt.result()
                if self._cancelled(run_id):
                    attempt.cancel()
                    await asyncio.wait({attempt})
                    return None
        finally:
            if not attempt.done():  # this task was cancelled: the executor stops what it started
                attempt.cancel()
                await asyncio.wait({attempt})

    def _cancelled(self, run_id: int) -> bool:
        with self.sessions() as db:
            return db.get(Run, run_id).status == "cancelled"

    async def _execute(self, run_id: int) -> None:
        out_dir = self.runs_root / str(run_id)
        with self.sessions() as db:
            run = db.get(Run, run_id)
            pipeline = run.pipeline
            version = find_version(pipeline, run.version)
            # An executor that retries within one run (Argo's retryStrategy) gets the retries;
            # otherwise the service tries again itself.
            inside = getattr(self.executor, "retries_itself", False)
            spec = run_spec(
                run.id,
                pipeline.team,
                pipeline.name,
                version,
                pipeline.timeout,
                dict(run.parameters),
                retries=pipeline.retries if inside else 0,
            )
            attempts = 1 if inside else pipeline.retries + 1
        notebook = await asyncio.to_thread(self.versions.notebook_text, spec.team, spec.pipeline, version)
        for attempt in range(1, attempts + 1):
            with self.sessions.begin() as db:
                run = db.get(Run, run_id)
                if run.status == "cancelled":
                    return
                run.status, run.attempts = "running", attempt
                run.started_at = run.started_at or now()
                run.output_dir = str(out_dir)
            try:
                outcome = await self._run_until_cancelled(run_id, spec, notebook, out_dir)
            except asyncio.CancelledError:
                if self._cancelled(run_id):
                    return  # cancel() recorded it; the executor stopped its processes
                raise
            except Exception as e:  # an executor bug must not leave the run "running" forever
                log.exception("run %s failed to run", run_id)
                outcome = RunOutcome("failed", None, f"the run could not be started: {e}")
            if outcome is None:
                return  # cancelled through another replica; the executor stopped its processes
            if outcome.status == "succeeded" or self._cancelled(run_id):
                break
        with self.sessions.begin() as db:
            run = db.get(Run, run_id)
            if run.status == "cancelled":
                return  # cancelled while the executor was ending (Argo's stop); keep who cancelled it
            run.status, run.exit_code, run.reason = outcome.status, outcome.exit_code, outcome.reason
            run.error_cell, run.finished_at = outcome.error_cell, now()
            record_run(run)
            result = run_view(run)
            notify_url, on_success = run.pipeline.notify_url, run.pipeline.notify_on_success
        log.info(
            "run %s of %s/%s: %s %s", run_id, spec.team, spec.pipeline, result["status"], result["reason"]
        )
        if notify_url and (result["status"] != "succeeded" or on_success):
            url = f"{self.public_url}/services/pipelines/runs/{run_id}"
            await notify.send(notify_url, notify.run_message(spec.team, spec.pipeline, result, url))
