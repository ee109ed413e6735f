"""Chained triggers: a pipeline whose runs start when another pipeline's run ends (trigger `after`).

Contract:
- A deployment with trigger `after` names `after_pipeline` ("team/name")
  and `after_on`: `success` (the upstream run succeeded), `failure` (it
  failed, timed out or was rejected) or `any` (either).
- `check_chain(db, pipeline, fields)` refuses, at deploy time and before
  anything changes (`SpecError`, naming the key): an upstream that doesn't
  exist, a chain between teams the upstream pipeline's team hasn't allowed
  (the upstream deployment's `subscribers` lists the other teams that may
  chain after it), and a loop (following `after_pipeline` from the upstream
  comes back to this pipeline), shown as the loop's path.
- `chained_after(db, run)` is the pipelines to start when `run` has ended:
  deployed, not paused, not deleted, matching `after_on`, still allowed by
  the upstream, and not already in the run's own chain of upstream runs (a
  loop made by two deploys racing each other stops there). Runs.start
  records each with `upstream_run`, unique per pipeline, so each upstream
  run starts each downstream pipeline exactly once, whichever replica saw it.
"""

from __future__ import annotations

from sqlalchemy import select

from ..publishing.specs import SpecError
from ..store.models import Pipeline, Run
from ..triggers import AFTER

OUTCOMES = {
    "success": ("succeeded",),
    "failure": ("failed", "timed_out", "rejected"),
    "any": ("succeeded", "failed", "timed_out", "rejected"),
}


def _find(db, full_name: str) -> Pipeline | None:
    team, _, name = (full_name or "").partition("/")
    return db.scalar(
        select(Pipeline).where(Pipeline.team == team, Pipeline.name == name, Pipeline.deleted_at.is_(None))
    )


def allowed(upstream: Pipeline, team: str) -> bool:
    return team == upstream.team or team in (upstream.subscribers or [])


def check_chain(db, pipeline: Pipeline, fields: dict) -> None:
    if fields.get("trigger") != AFTER:
        return
    target = fields["after_pipeline"]
    upstream = _find(db, target)
    if upstream is None:
        raise SpecError(f"after_pipeline: there is no pipeline {target!r} (write it as team/name)")
    if not allowed(upstream, pipeline.team):
        raise SpecError(
            f"after_pipeline: team {upstream.team} doesn't allow team {pipeline.team} to chain after"
            f" {target}; a member of {upstream.team} can add {pipeline.team} to its subscribers"
        )
    # Walk upstream from the new upstream: reaching this pipeline again is a loop.
    names, current = [f"{pipeline.team}/{pipeline.name}", target], upstream
    while current is not None:
        if current.id == pipeline.id:
            raise SpecError(f"after_pipeline: a loop: {' → '.join(reversed(names))}")
        if current.trigger != AFTER or not current.after_pipeline or len(names) > 100:
            return
        names.append(current.after_pipeline)
        current = _find(db, current.after_pipeline)


def chained_after(db, run: Run) -> list[int]:
    upstream = run.pipeline
    full_name = f"{upstream.team}/{upstream.name}"
    candidates = db.scalars(
        select(Pipeline).where(
            Pipeline.trigger == AFTER,
            Pipeline.after_pipeline == full_name,
            Pipeline.deleted_at.is_(None),
            Pipeline.paused.is_(False),
            Pipeline.active_version.is_not(None),
        )
    )
    lineage = _lineage(db, run)
    return [
        p.id
        for p in candidates
        if run.status in OUTCOMES.get(p.after_on or "success", ())
        and allowed(upstream, p.team)
        and p.id not in lineage
    ]


def _lineage(db, run: Run) -> set[int]:
    """The pipelines of `run` and of the runs that started it, chain by chain."""
    seen: set[int] = set()
    current: Run | None = run
    while current is not None and current.pipeline_id not in seen:
        seen.add(current.pipeline_id)
        current = db.get(Run, current.upstream_run) if current.upstream_run else None
    return seen
