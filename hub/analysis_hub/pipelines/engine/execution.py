"""Executing a run: its steps in dependency order, each through the `Executor`, recorded step by step.

Contract:
- `advance(run_id)` drives a run until it ends or waits at an approval gate:
  it asks `dag.next_moves` what to do, records skipped steps with the
  reason, starts ready notebook steps (independent ones at once) and opens
  ready gates, and records each step as it ends: status, attempts, exit
  code, reason, error cell and its recorded outputs. A run whose only
  unfinished steps are gates is `waiting`: no task, no process, nothing held;
  a decision (`gates.py`) calls `advance` again.
- A notebook step is tried up to its retries (the step's, else the
  deployment's) + 1 times, each within its timeout (the step's, else the
  deployment's) and the time the run has left of the deployment's timeout,
  which counts everything but the waits at gates. An executor that raises
  fails the step with the error; nothing is left `running` by a bug.
- A cancel (this replica: the task is cancelled; another: noticed within
  `ELSEWHERE_POLL_S`) stops the executor and records the unfinished steps
  `cancelled`; a cancelled run is never overwritten by a late outcome.
- One process drives a run at a time. Each look locks the run's row (on
  PostgreSQL; SQLite has one writer anyway), so a decision and a look never
  cross: a gate decided through another replica either finds the run
  `waiting` (nobody drives it; that replica takes it on) or is seen by the
  driver's next look, within `ELSEWHERE_POLL_S` (`gates.py`).
- When the run ends: its status and reason (the first failed step's),
  the single-notebook run's exit code and error cell, the run metrics; the
  webhook on failure (on success too if asked); the executor's `end_run`
  (`end_run` here: Kubernetes deletes or keeps the run folder's claim);
  and `on_finished(run_id)`, which starts the pipelines chained after this
  one (`chains.py`).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import nbformat

from ..publishing.notebooks import recorded_outputs
from ..publishing.versions import Versions, find_version
from ..publishing.workflow_spec import dag_steps
from ..statuses import FINISHED, STEP_FINISHED
from ..store.models import Run, StepRun, now
from ..web.views import run_view
from . import notify
from .dag import APPROVAL, StepState, ancestors, next_moves
from .executor import OUTPUT, RunOutcome
from .run_metrics import record_run
from .steps import is_workflow, run_folder, step_folder, step_parameters, step_spec, version_steps

log = logging.getLogger(__name__)

# How soon the process driving a run notices what another replica did to it: a cancel, a decision.
ELSEWHERE_POLL_S = 2.0


def received_parameters(steps: list, name: str, run: Run, workflow: bool) -> dict:
    """What papermill gets for step `name` of `run` (`steps`: its version's): the run's values and
    the recorded outputs of the steps upstream of it only (another branch's outputs may or may not
    be recorded yet, and a parameter must not depend on which finished first). The run page shows
    these as what the step received."""
    above = ancestors(dag_steps(steps), name)
    upstream = {r.step: dict(r.outputs or {}) for r in run.steps if r.step in above and r.outputs}
    step = next(s for s in steps if s.name == name)
    return step_parameters(step, dict(run.parameters), upstream, workflow)


class Execution:
    def __init__(
        self,
        *,
        sessions,
        versions: Versions,
        executor,
        runs_root: Path,
        public_url: str,
        on_finished: Callable[[int], Awaitable[None]] | None = None,
    ):
        self.sessions = sessions
        self.versions = versions
        self.executor = executor
        self.runs_root = runs_root
        self.public_url = public_url
        self.on_finished = on_finished
        self.gates = None  # set by the service: gates.Gates opens a gate (notify, audit)
        self._wake: dict[int, asyncio.Event] = {}  # a decision on a run that is still going

    def wake(self, run_id: int) -> None:
        """A gate of a run this process is driving was decided: look again at once (also when the
        decision comes between two looks: the next wait finds the event already set)."""
        self._wake.setdefault(run_id, asyncio.Event()).set()

    # -- the run ------------------------------------------------------------

    async def advance(self, run_id: int) -> None:
        running: dict[str, asyncio.Task] = {}
        try:
            while True:
                opened: list[str] = []
                with self.sessions.begin() as db:
                    run = db.get(Run, run_id, with_for_update=True)  # one look at a time (see above)
                    if run.status in FINISHED:
                        return
                    version = find_version(run.pipeline, run.version)
                    steps = version_steps(version)
                    rows = _step_rows(db, run, steps)
                    states = {name: StepState(r.status, dict(r.outputs or {})) for name, r in rows.items()}
                    moves = next_moves(dag_steps(steps), states)
                    for name, why in moves.skip.items():
                        rows[name].status, rows[name].reason, rows[name].finished_at = "skipped", why, now()
                    if moves.finished:
                        self._finish_run(run, rows, moves, is_workflow(version))
                        result = run_view(run)
                        notify_url, on_success = run.pipeline.notify_url, run.pipeline.notify_on_success
                        team, name = run.pipeline.team, run.pipeline.name
                        break
                    if not running and moves.status == "waiting" and not moves.start:
                        run.status = "waiting"
                        return  # a decision resumes it (gates.py)
                    run.status = "running"
                    run.started_at = run.started_at or now()
                    by_name = {s.name: s for s in steps}
                    for name in moves.start:
                        row, step = rows[name], by_name[name]
                        row.started_at = now()
                        if step.kind == APPROVAL:
                            row.status, row.approvers = "waiting", step.approvers
                            row.deadline = row.started_at + timedelta(seconds=step.timeout)
                            opened.append(name)
                        else:
                            row.status = "running"
                    started = [n for n in moves.start if by_name[n].kind != APPROVAL]
                for name in opened:
                    if self.gates is not None:
                        await self.gates.opened(run_id, name)
                for name in started:
                    running[name] = asyncio.ensure_future(self._run_step(run_id, name))
                if not running:
                    if moves.skip or opened:
                        continue  # look again: what they unblock
                    log.warning("run %s: nothing to start and nothing running; left as it is", run_id)
                    return
                wake = asyncio.ensure_future(self._wake.setdefault(run_id, asyncio.Event()).wait())
                done, _ = await asyncio.wait(
                    [*running.values(), wake], timeout=ELSEWHERE_POLL_S, return_when=asyncio.FIRST_COMPLETED
                )
                wake.cancel()
                self._wake[run_id].clear()
                for name in [n for n, t in running.items() if t in done]:
                    if error := running.pop(name).exception():
                        # A bug, not the notebook: the step fails with it; the run is never stuck.
                        log.error("run %s step %s: %r", run_id, name, error, exc_info=error)
                        self._fail_step(run_id, name, f"the step could not be run: {error}")
        except asyncio.CancelledError:
            for task in running.values():
                task.cancel()
            await asyncio.gather(*running.values(), return_exceptions=True)
            raise
        finally:
            self._wake.pop(run_id, None)
            # A run found finished while steps still run was cancelled through another replica:
            # each step stops its executor itself (_until_cancelled); the run ends once they have.
            await asyncio.gather(*running.values(), return_exceptions=True)
        log.info("run %s of %s/%s: %s %s", run_id, team, name, result["status"], result["reason"])
        await end_run(self.executor, run_id, result["status"])
        if notify_url and (result["status"] != "succeeded" or on_success):
            url = f"{self.public_url}/services/pipelines/runs/{run_id}"
            await notify.send(notify_url, notify.run_message(team, name, result, url))
        if self.on_finished is not None:
            await self.on_finished(run_id)

    def _finish_run(self, run: Run, rows: dict, moves, workflow: bool) -> None:
        run.status, run.reason = moves.status, moves.reason
        if moves.culprit is not None:
            culprit = rows[moves.culprit]
            if workflow and culprit.kind == APPROVAL:  # the gate's reason says its decision itself
                run.reason = f"step {moves.culprit} {culprit.reason}" if culprit.reason else moves.reason
            elif workflow:
                run.reason = f"{moves.reason}: {culprit.reason}" if culprit.reason else moves.reason
            else:  # failed or timed_out, with the step's own reason, as before workflows
                run.status, run.reason = culprit.status, culprit.reason
        if not workflow:  # one step: the run is that step, as single-notebook runs always were
            only = next(iter(rows.values()))
            run.exit_code, run.error_cell, run.attempts = only.exit_code, only.error_cell, only.attempts
        run.finished_at = now()
        record_run(run)

    # -- one notebook step ----------------------------------------------------

    async def _run_step(self, run_id: int, name: str) -> None:
        with self.sessions() as db:
            run = db.get(Run, run_id)
            pipeline, version = run.pipeline, find_version(run.pipeline, run.version)
            workflow = is_workflow(version)
            steps = {s.name: s for s in version_steps(version)}
            step = steps[name]
            inside = self.executor.retries_itself
            retries = pipeline.retries if step.retries is None else step.retries
            timeout = min(step.timeout or pipeline.timeout, self._time_left(run, pipeline.timeout))
            out_dir = step_folder(self.runs_root, run_id, name, workflow)
            spec = step_spec(
                run_id,
                pipeline.team,
                pipeline.name,
                version.number,
                step,
                received_parameters(list(steps.values()), name, run, workflow),
                max(math.ceil(timeout), 1),  # whole seconds, as executors (a Job's deadline) take them
                retries if inside else 0,
                run_folder(self.runs_root, run_id, workflow),
                workflow,
                copy_of=run.repair_of if workflow else None,
            )
            attempts = 1 if inside else retries + 1
        notebook = await asyncio.to_thread(
            self.versions.notebook_text, pipeline.team, pipeline.name, version, step.notebook
        )
        outcome = RunOutcome("timed_out", None, f"the run's timeout of {pipeline.timeout} s was reached")
        for attempt in range(1, attempts + 1):
            if timeout <= 0:
                break
            with self.sessions.begin() as db:
                row = _row(db, run_id, name)
                if row.status == "cancelled":
                    return
                row.attempts = attempt
                db.get(Run, run_id).attempts = attempt
                db.get(Run, run_id).output_dir = str(out_dir)
            try:
                outcome = await self._until_cancelled(run_id, spec, notebook, out_dir)
            except asyncio.CancelledError:
                self._record_cancelled(run_id)
                raise
            except Exception as e:  # an executor bug must not leave the step "running" forever
                log.exception("run %s step %s failed to run", run_id, name)
                outcome = RunOutcome("failed", None, f"the run could not be started: {e}")
            if outcome is None:
                self._record_cancelled(run_id)
                return  # cancelled through another replica; the executor stopped its processes
            if outcome.status == "succeeded" or self._cancelled(run_id):
                break
        outputs = await asyncio.to_thread(_read_outputs, out_dir / OUTPUT)
        with self.sessions.begin() as db:
            row = _row(db, run_id, name)
            if row.status == "cancelled":
                return
            row.status, row.exit_code, row.reason = outcome.status, outcome.exit_code, outcome.reason
            row.error_cell, row.finished_at, row.outputs = outcome.error_cell, now(), outputs

    def _fail_step(self, run_id: int, name: str, reason: str) -> None:
        with self.sessions.begin() as db:
            row = _row(db, run_id, name)
            if row.status not in STEP_FINISHED:
                row.status, row.reason, row.finished_at = "failed", reason, now()

    def _time_left(self, run: Run, timeout: int) -> float:
        """The deployment's timeout less the time the run has executed (waits at gates excluded)."""
        if run.started_at is None:
            return timeout
        waited = sum(
            ((r.finished_at or now()) - r.started_at).total_seconds()
            for r in run.steps
            # A gate a repair kept waited in the earlier run, before this one started.
            if r.kind == APPROVAL and r.started_at and r.reused_from is None
        )
        return timeout - ((now() - run.started_at).total_seconds() - waited)

    async def _until_cancelled(self, run_id: int, spec, notebook: str, out_dir: Path):
        """The executor's outcome, or None once the run is recorded cancelled by another replica
        (checked every ELSEWHERE_POLL_S; a cancel through this one cancels the task at once)."""
        attempt = asyncio.ensure_future(self.executor.run(spec, notebook, out_dir))
        try:
            while True:
                done, _ = await asyncio.wait({attempt}, timeout=ELSEWHERE_POLL_S)
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

    def _record_cancelled(self, run_id: int) -> None:
        if self._cancelled(run_id):
            cancel_steps(self.sessions, run_id)


async def end_run(executor, run_id: int, status: str) -> None:
    """Tell the executor the run ended (one that keeps something across a run's steps releases it)."""
    try:
        await executor.end_run(run_id, status)
    except Exception:  # the run is recorded; what the executor kept is cleaned up later
        log.exception("run %s: the executor could not release what it kept for the run", run_id)


def cancel_steps(sessions, run_id: int) -> None:
    """Every unfinished step of a cancelled run is cancelled too."""
    with sessions.begin() as db:
        for row in db.get(Run, run_id).steps:
            if row.status not in STEP_FINISHED:
                row.status, row.finished_at = "cancelled", row.finished_at or now()


def _step_rows(db, run: Run, steps) -> dict[str, StepRun]:
    rows = {r.step: r for r in run.steps}
    for step in steps:
        if step.name not in rows:
            rows[step.name] = StepRun(run_id=run.id, step=step.name, kind=step.kind, outputs={})
            db.add(rows[step.name])
    db.flush()
    return rows


def _row(db, run_id: int, name: str) -> StepRun:
    return next(r for r in db.get(Run, run_id).steps if r.step == name)


def _read_outputs(path: Path) -> dict:
    try:
        return recorded_outputs(nbformat.read(path, as_version=4))
    except (OSError, ValueError, nbformat.ValidationError):
        return {}
