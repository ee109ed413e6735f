"""Approval gates: a workflow step that waits until a member of its approver group decides.

Contract:
- When a run reaches a gate (`execution.py`), `opened(run_id, step)` audits
  the request (`approval-requested`, by whoever started the run) and posts
  to the deployment's webhook a message linking to the run's page, where
  approvers decide. The run holds nothing meanwhile.
- `decide(caller, run_id, step, approve, comment)`: only a member of the
  gate's approver group (a hub group; being an admin or in the team is not
  enough) may decide (`Forbidden` otherwise), and only a gate that is
  waiting (`Conflict` otherwise). The decision (approved or rejected, who,
  when, the comment) is recorded on the step and audited (`approve` /
  `reject`), and the run goes on: downstream steps run, or are skipped and
  the run ends `rejected`. A run that was `waiting` is driven on from the
  replica that recorded the decision; one still driven (another branch is
  running) is left to its driver, woken here if it is this replica, else
  noticing at its next look (`execution.py`). The run's row is locked while
  the decision is recorded, so the two never miss each other.
- `waiting_for(caller)`: the gates waiting for a decision of one of the
  caller's groups (whatever team the pipeline is), soonest deadline first
  (`views.waiting_gate_view`): what an approver is asked to do.
- `expire()` rejects every gate past its deadline (the step's `timeout`,
  72 h by default), audited with the actor `timeout`; the service calls it
  every few seconds (replicas.keep_in_step).
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from ...quantities import format_duration
from ..access import Caller, Conflict, Forbidden, NotFound
from ..store.models import AuditEvent, Pipeline, Run, StepRun, now
from ..web.views import iso, waiting_gate_view
from . import notify

log = logging.getLogger(__name__)
TIMEOUT_ACTOR = "timeout"


class Gates:
    def __init__(self, *, sessions, public_url: str, follow, wake):
        self.sessions = sessions
        self.public_url = public_url
        self.follow = follow  # runs.Runs.follow: drive a waiting run on from here
        self.wake = wake  # runs.Runs.wake: this process's driver of a running run looks again

    def run_url(self, run_id: int) -> str:
        return f"{self.public_url}/services/pipelines/runs/{run_id}"

    async def opened(self, run_id: int, step: str) -> None:
        with self.sessions.begin() as db:
            run = db.get(Run, run_id)
            row = _gate(run, step)
            pipeline = run.pipeline
            deadline = iso(row.deadline)
            after = {"run": run_id, "step": step, "approvers": row.approvers, "deadline": deadline}
            db.add(
                AuditEvent(
                    actor=run.started_by,
                    action="approval-requested",
                    team=pipeline.team,
                    pipeline=pipeline.name,
                    after=after,
                )
            )
            notify_url, team, name, approvers = (
                pipeline.notify_url,
                pipeline.team,
                pipeline.name,
                row.approvers,
            )
        if notify_url:
            await notify.send(
                notify_url, notify.approval_message(team, name, run_id, step, approvers, self.run_url(run_id))
            )

    def decide(self, caller: Caller, run_id: int, step: str, approve: bool, comment: str = "") -> dict:
        with self.sessions.begin() as db:
            run = db.get(Run, run_id, with_for_update=True)  # no look of its driver in between
            if run is None:
                raise NotFound(f"no run {run_id}")
            row = next((r for r in run.steps if r.step == step and r.kind == "approval"), None)
            if row is None:
                raise NotFound(f"run {run_id} has no approval step {step!r}")
            if row.approvers not in caller.groups:
                raise Forbidden(f"only members of {row.approvers} may decide on {step} (you are not)")
            if row.status != "waiting":
                raise Conflict(f"{step} of run {run_id} is not waiting for a decision ({row.status})")
            resumes = run.status == "waiting"
            view = self._record(db, run, row, caller.name, approve, comment)
        self._go_on(run_id, resumes)
        return view

    def waiting_for(self, caller: Caller) -> list[dict]:
        if not caller.groups:
            return []
        query = (
            select(StepRun)
            .join(Run, StepRun.run_id == Run.id)
            .join(Pipeline, Run.pipeline_id == Pipeline.id)
            .where(
                StepRun.status == "waiting",
                StepRun.approvers.in_(sorted(caller.groups)),
                Pipeline.deleted_at.is_(None),
            )
            .order_by(StepRun.deadline, StepRun.id)
        )
        with self.sessions() as db:
            return [waiting_gate_view(row) for row in db.scalars(query)]

    def expire(self) -> list[int]:
        """Reject the gates past their deadline; the runs they belong to (driven on from here)."""
        with self.sessions.begin() as db:
            # Replicas sweep together: each late gate is decided by the one that locks it first.
            query = select(StepRun).where(StepRun.status == "waiting", StepRun.deadline < now())
            late = db.scalars(query.with_for_update(skip_locked=True))
            decided = {}
            for row in late:
                waited = round((row.deadline - row.started_at).total_seconds()) if row.started_at else 0
                within = format_duration(waited)
                run = db.get(Run, row.run_id, with_for_update=True, populate_existing=True)
                # Two gates of one run may expire together: the first one's decision resumes it.
                decided[row.run_id] = decided.get(row.run_id, False) or run.status == "waiting"
                self._record(db, run, row, TIMEOUT_ACTOR, False, f"no decision within {within}")
        for run_id, resumes in decided.items():
            log.info("run %s: an approval gate timed out and rejected it", run_id)
            self._go_on(run_id, resumes)
        return list(decided)

    def _go_on(self, run_id: int, resumes: bool) -> None:
        if resumes:  # nobody drives a waiting run: from here
            self.follow(run_id)
        else:  # its driver goes on: at once if it is this process
            self.wake(run_id)

    def _record(self, db, run: Run, row: StepRun, actor: str, approve: bool, comment: str) -> dict:
        row.status = "approved" if approve else "rejected"
        row.decided_by, row.comment, row.finished_at = actor, comment[:2000], now()
        if actor == TIMEOUT_ACTOR:  # "rejected: no decision within 3h"
            row.reason = f"{row.status}: {comment}"
        else:  # "rejected by carol: “not this week”"
            row.reason = f"{row.status} by {actor}" + (f": “{comment}”" if comment else "")
        if run.status == "waiting":
            run.status = "running"
        after = {"run": run.id, "step": row.step, "decision": row.status, "comment": row.comment}
        db.add(
            AuditEvent(
                actor=actor,
                action="approve" if approve else "reject",
                team=run.pipeline.team,
                pipeline=run.pipeline.name,
                before={"run": run.id, "step": row.step, "status": "waiting"},
                after=after,
            )
        )
        return {
            "run": run.id,
            "step": row.step,
            "status": row.status,
            "decided_by": actor,
            "comment": comment,
        }


def _gate(run: Run, step: str) -> StepRun:
    return next(r for r in run.steps if r.step == step)
