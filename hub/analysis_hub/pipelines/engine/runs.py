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
  the executor's own `cancel(run_id)` (Kubernetes deletes the run's Jobs;
  the others' default does nothing), and the run's task here (the local
  executor kills papermill's processes on cancellation, the docker one
  removes its container, the Kubernetes one deletes its Job); the run is recorded
  `cancelled` with who cancelled it, and audited (`cancel`); it answers once
  the run's task has ended. A finished run
  is a Conflict. A cancelled run is never overwritten by its late outcome.
  The replica that follows the run notices a cancel made through another
  one within `ELSEWHERE_POLL_S` and stops its executor the same way.
- `recover()`, at start, fails the runs this replica's previous process left
  unfinished (never another live replica's: replicas.py). Each run records
  the replica that started it. An interrupted run ends like any failed run
  (`ended_elsewhere`): the executor's `end_run`, then the pipelines chained
  after its failure.
- Every run that ends or is skipped is counted (`run_metrics.record_run`).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from ..access import Caller, Conflict, NotFound, find_pipeline, find_run, pipeline_for_token
from ..publishing.specs import SpecError, declared_parameters, run_parameters
from ..publishing.versions import Versions, find_version
from ..statuses import STEP_SUCCEEDED, UNFINISHED
from ..store.models import AuditEvent, Pipeline, Run, StepRun, now
from ..triggers import AFTER, HTTP, MANUAL, REPAIR
from ..web.views import run_view
from . import replicas
from .chains import chained_after
from .dag import NOTEBOOK
from .execution import Execution, cancel_steps, end_run, received_parameters
from .executor import Executor
from .gates import Gates
from .run_metrics import record_run
from .steps import is_workflow, run_folder, step_facts, step_folder, version_steps

log = logging.getLogger(__name__)

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
        self.execution = Execution(
            sessions=sessions,
            versions=versions,
            executor=executor,
            runs_root=runs_root,
            public_url=self.public_url,
            on_finished=self._start_chained,
        )
        self.gates = Gates(sessions=sessions, public_url=self.public_url, follow=self.follow, wake=self.wake)
        self.execution.gates = self.gates

    def recover(self) -> None:
        with self.sessions.begin() as db:
            interrupted = replicas.recover(db, self.replica)  # never another live replica's runs
        if interrupted:  # in the running event loop (Pipelines.start)
            task = asyncio.create_task(self.ended_elsewhere(interrupted))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def ended_elsewhere(self, run_ids: list[int]) -> None:
        """Runs recorded as ended without their task (interrupted: failed): tell the executor and
        start the pipelines chained after them, as a run's own end does."""
        for run_id in run_ids:
            await end_run(self.executor, run_id, "failed")
            await self._start_chained(run_id)

    # -- reading ------------------------------------------------------------

    def history(self, caller: Caller, team: str, name: str, limit: int = 500) -> list[dict]:
        with self.sessions() as db:
            return [run_view(r) for r in recent_runs(db, find_pipeline(db, caller, team, name), limit)]

    def get(self, caller: Caller, run_id: int, step: str | None = None) -> tuple[dict, Path]:
        """A run as the API shows it, and its folder of files (a workflow step's, given `step`);
        also to the approvers of a gate it reached, whom the gate asks to look at it. A workflow's
        `dag` has each step's facts and, once it started, the parameters it `received`;
        `repair_keeps` names the steps a repair would keep."""
        with self.sessions() as db:
            run = find_run(db, caller, run_id, approvers_too=True)
            version = find_version(run.pipeline, run.version)
            workflow = is_workflow(version)
            steps = version_steps(version)
            view = {**run_view(run), "team": run.pipeline.team, "pipeline": run.pipeline.name}
            # What the run page shows of each step: what it waits for, its profile and limits.
            view["dag"] = {s.name: step_facts(s) for s in steps} if workflow else {}
            for row in run.steps if workflow else ():
                if row.kind == NOTEBOOK and row.started_at is not None:
                    view["dag"][row.step]["received"] = received_parameters(steps, row.step, run, workflow)
            view["repair_keeps"] = [r.step for r in _kept_steps(steps, {r.step: r for r in run.steps})]
            if step is None:
                return view, self.runs_root / str(run_id)
            row = next((r for r in run.steps if r.step == step), None)
            if row is None:
                raise NotFound(f"run {run_id} has no step {step!r}")
        return view, step_folder(self.runs_root, run_id, step, workflow, row.reused_from)

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
        self,
        pipeline_id: int,
        trigger: str,
        actor: str,
        parameters: dict | None = None,
        scheduled_for=None,
        upstream_run: int | None = None,
    ) -> dict:
        after: dict = {}
        with self.sessions.begin() as db:
            pipeline = db.get(Pipeline, pipeline_id)
            if not pipeline.deployed:
                raise SpecError(f"{pipeline.team}/{pipeline.name} is not deployed; deploy a version first")
            version = find_version(pipeline, pipeline.active_version)
            values = run_parameters(
                declared_parameters(version.parameters), pipeline.parameters, parameters or {}
            )
            if upstream_run is not None:
                after["upstream_run"] = upstream_run
            run = Run(
                pipeline_id=pipeline.id,
                version=version.number,
                trigger=trigger,
                started_by=actor,
                parameters=values,
                scheduled_for=scheduled_for,
                upstream_run=upstream_run,
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
            after |= {"run": run.id, "version": version.number, "trigger": trigger, "status": run.status}
            db.add(
                AuditEvent(actor=actor, action="run", team=pipeline.team, pipeline=pipeline.name, after=after)
            )
            result = run_view(run)
        if result["status"] == "queued":
            self.follow(result["id"])
        return result

    def follow(self, run_id: int) -> None:
        """Drive a run from here (a new run, a repair, a decided gate), unless this process already is."""
        following = self._by_run.get(run_id)
        # A task that has just ended (its done callbacks not run yet) can't be woken: start anew.
        if following is not None and not following.done():
            self.execution.wake(run_id)
            return
        task = asyncio.create_task(self.execution.advance(run_id))
        self._tasks.add(task)
        self._by_run[run_id] = task
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda ended, run_id=run_id: self._forget(run_id, ended))

    def wake(self, run_id: int) -> None:
        """A run's gate was decided while the run was being driven: look again at once if it is
        driven from here (another replica's driver notices within ELSEWHERE_POLL_S)."""
        following = self._by_run.get(run_id)
        if following is not None and not following.done():
            self.execution.wake(run_id)

    def _forget(self, run_id: int, ended: asyncio.Task) -> None:
        if self._by_run.get(run_id) is ended:  # not a newer task following the same run
            del self._by_run[run_id]

    async def repair(self, caller: Caller, run_id: int) -> dict:
        """A new run of a run that didn't succeed, from where it failed: the steps that succeeded
        (with everything upstream of them) keep their outputs and files; the others run again."""
        with self.sessions.begin() as db:
            old = find_run(db, caller, run_id)
            if old.status not in ("failed", "timed_out", "cancelled", "rejected"):
                raise Conflict(
                    f"run {run_id} is {old.status}; only a run that failed, timed out,"
                    " was cancelled or rejected can be repaired"
                )
            steps = version_steps(find_version(old.pipeline, old.version))
            kept = _kept_steps(steps, {r.step: r for r in old.steps})
            run = Run(
                pipeline_id=old.pipeline_id,
                version=old.version,
                trigger=REPAIR,
                started_by=caller.name,
                parameters=dict(old.parameters),
                repair_of=old.id,
                replica=self.replica,
            )
            db.add(run)
            db.flush()
            for row in kept:
                db.add(
                    StepRun(
                        run_id=run.id,
                        step=row.step,
                        kind=row.kind,
                        status=row.status,
                        attempts=row.attempts,
                        started_at=row.started_at,
                        finished_at=row.finished_at,
                        exit_code=row.exit_code,
                        outputs=dict(row.outputs or {}),
                        reused_from=row.reused_from or old.id,
                        decided_by=row.decided_by,
                        comment=row.comment,
                        reason=f"kept from run {row.reused_from or old.id}",
                    )
                )
            after = {
                "run": run.id,
                "repair_of": old.id,
                "version": old.version,
                "kept": [r.step for r in kept],
            }
            db.add(
                AuditEvent(
                    actor=caller.name,
                    action="repair",
                    team=old.pipeline.team,
                    pipeline=old.pipeline.name,
                    after=after,
                )
            )
            result = run_view(run)
        shared = run_folder(self.runs_root, run_id, workflow=True)
        if shared.is_dir():  # the kept steps' data, for the steps that run again
            copy = run_folder(self.runs_root, result["id"], workflow=True)
            await asyncio.to_thread(shutil.copytree, shared, copy, symlinks=True)
        self.follow(result["id"])
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
        cancel_steps(self.sessions, run_id)
        try:
            await self.executor.cancel(run_id)
        except Exception:  # the run is recorded cancelled; the task below is cancelled anyway
            log.exception("run %s: the executor could not cancel it", run_id)
        task = self._by_run.get(run_id)
        if task is not None:
            task.cancel()
            # Answer once the executor has stopped what it started (processes, a container).
            await asyncio.wait({task})
        await end_run(self.executor, run_id, "cancelled")
        return result

    async def _start_chained(self, run_id: int) -> None:
        """Start the pipelines chained after this ended run (chains.py), each once."""
        with self.sessions() as db:
            run = db.get(Run, run_id)
            downstream = chained_after(db, run)
            actor = f"{run.pipeline.team}/{run.pipeline.name} run {run_id}"
        for pipeline_id in downstream:
            try:
                await self.start(pipeline_id, AFTER, actor, upstream_run=run_id)
            except IntegrityError:
                pass  # another replica started it for this upstream run already
            except Exception:
                log.exception("pipeline %s chained after run %s could not start", pipeline_id, run_id)

    async def wait_idle(self) -> None:
        """Wait for every run this process started to be recorded: the tests' way to see runs end
        (the service itself never waits: a stopped service's runs are failed at the next start)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _kept_steps(steps, rows: dict) -> list:
    """The steps a repair keeps: those that succeeded (or were approved) with all of their
    upstream kept too, so nothing kept depends on a step that runs again."""
    kept: dict[str, object] = {}
    for step in steps:  # in topological order
        row = rows.get(step.name)
        succeeded = row is not None and row.status in STEP_SUCCEEDED
        if succeeded and all(dep in kept for dep in step.depends_on):
            kept[step.name] = row
    return list(kept.values())
