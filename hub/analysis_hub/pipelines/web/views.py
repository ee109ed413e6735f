"""What the API and the pages show of the database's rows: pure translations to JSON-ready dicts.

Contract: `version_view`, `run_view`, `audit_view`, `pipeline_summary` and
`waiting_gate_view` take rows (and, for a summary, its last run and next
scheduled time) and return plain dicts; times are ISO 8601 in UTC with a `Z`. The REST API,
the pages, the audit trail and the notifications all show these.
"""

from __future__ import annotations

from datetime import datetime

from ..statuses import FINISHED
from ..store.models import AuditEvent, Pipeline, Run, StepRun, Version


def iso(value: datetime | None) -> str | None:
    return value.isoformat() + "Z" if value else None


def pipeline_summary(pipeline: Pipeline, last_run: Run | None, next_run: datetime | None) -> dict:
    return {
        "team": pipeline.team,
        "name": pipeline.name,
        "created_by": pipeline.created_by,
        "latest_version": max((v.number for v in pipeline.versions), default=None),
        **pipeline.deployment(),
        "next_run": next_run.isoformat() if next_run else None,
        "last_run": run_view(last_run) if last_run else None,
    }


def version_view(v: Version) -> dict:
    return {
        "number": v.number,
        "commit": v.commit,
        "profile": v.profile,
        "choices": v.choices,
        "resources": v.resources,
        "image": v.image,
        "parameters": v.parameters,
        "kernel": v.kernel,
        "message": v.message,
        "published_by": v.published_by,
        "published_at": iso(v.published_at),
        "steps": v.steps,  # a workflow's (workflow.stored_steps); None for a single notebook
    }


def run_view(r: Run) -> dict:
    return {
        "id": r.id,
        "version": r.version,
        "status": r.status,
        "finished": r.status in FINISHED,
        "trigger": r.trigger,
        "started_by": r.started_by,
        "parameters": r.parameters,
        "attempts": r.attempts,
        "created_at": iso(r.created_at),
        "scheduled_for": iso(r.scheduled_for),
        "started_at": iso(r.started_at),
        "finished_at": iso(r.finished_at),
        "exit_code": r.exit_code,
        "reason": r.reason,
        "error_cell": r.error_cell,
        "repair_of": r.repair_of,
        "upstream_run": r.upstream_run,
        "steps": [step_view(s) for s in r.steps],
    }


def step_view(s: StepRun) -> dict:
    seconds = (s.finished_at - s.started_at).total_seconds() if s.started_at and s.finished_at else None
    return {
        "step": s.step,
        "kind": s.kind,
        "status": s.status,
        "attempts": s.attempts,
        "started_at": iso(s.started_at),
        "finished_at": iso(s.finished_at),
        "duration_s": seconds,
        "exit_code": s.exit_code,
        "reason": s.reason,
        "error_cell": s.error_cell,
        "outputs": s.outputs or {},
        "reused_from": s.reused_from,
        "approvers": s.approvers,
        "deadline": iso(s.deadline),
        "decided_by": s.decided_by,
        "comment": s.comment,
    }


def waiting_gate_view(s: StepRun) -> dict:
    """A gate waiting for a decision, as an approver's list shows it."""
    run = s.run
    return {
        "run": run.id,
        "team": run.pipeline.team,
        "pipeline": run.pipeline.name,
        "version": run.version,
        "started_by": run.started_by,
        "step": s.step,
        "approvers": s.approvers,
        "since": iso(s.started_at),
        "deadline": iso(s.deadline),
    }


def audit_view(e: AuditEvent) -> dict:
    return {
        "id": e.id,
        "at": iso(e.at),
        "actor": e.actor,
        "action": e.action,
        "team": e.team,
        "pipeline": e.pipeline,
        "before": e.before,
        "after": e.after,
    }
