"""Who may see, change and run a pipeline: the only place team membership is decided.

Contract:
- A `Caller` is the hub user behind a request (name, hub groups, admin flag).
  A team is a hub group: its members, and admins, may see a team's pipelines,
  versions, runs and audit events, publish, deploy, roll back, delete and run.
  Nobody else may do any of it (`Forbidden`, 403).
- `find_pipeline` / `find_run` look a row up for a caller: a missing (or
  deleted) pipeline is `NotFound` (404), another team's is `Forbidden`.
  Seeing a run (`find_run(..., approvers_too=True)`: its steps, outputs and
  logs, and its page) is also open to the approver group of a gate the run
  has reached, who may be outside the team: they are asked to decide on it.
  Deciding is theirs alone (`gates.py`); changing the run stays the team's.
- An HTTP trigger is the one way in without a hub login: the pipeline's own
  token, stored only as a hash (`new_trigger_token`, `pipeline_for_token`).
- `Conflict` (409) and `TooLarge` (413) are the service's other refusals;
  every refusal is raised before anything changes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select

from .store.models import Pipeline, Run
from .triggers import HTTP


class Forbidden(Exception):
    pass


class NotFound(Exception):
    pass


class Conflict(Exception):
    pass


class TooLarge(Exception):
    pass


@dataclass(frozen=True)
class Caller:
    name: str
    groups: frozenset[str]
    admin: bool = False

    def member_of(self, team: str) -> bool:
        return self.admin or team in self.groups


def require_member(caller: Caller, team: str) -> None:
    if not caller.member_of(team):
        raise Forbidden(f"only members of {team} (and admins) may see or change its pipelines")


def find_pipeline(db, caller: Caller, team: str, name: str) -> Pipeline:
    pipeline = db.scalar(select(Pipeline).where(Pipeline.team == team, Pipeline.name == name))
    if pipeline is None or pipeline.deleted_at is not None:
        raise NotFound(f"no pipeline {team}/{name}")
    require_member(caller, team)
    return pipeline


def find_run(db, caller: Caller, run_id: int, approvers_too: bool = False) -> Run:
    run = db.get(Run, run_id)
    if run is None:
        raise NotFound(f"no run {run_id}")
    if caller.member_of(run.pipeline.team):
        return run
    if approvers_too and any(step.approvers in caller.groups for step in run.steps if step.approvers):
        return run
    raise Forbidden(f"run {run_id} belongs to another team's pipeline")


def new_trigger_token() -> tuple[str, str]:
    """A fresh token (shown once) and the hash the database keeps."""
    token = secrets.token_urlsafe(32)
    return token, _hash(token)


def pipeline_for_token(db, team: str, name: str, token: str) -> Pipeline:
    """The pipeline an HTTP trigger token opens, or `Forbidden` saying nothing about why."""
    pipeline = db.scalar(select(Pipeline).where(Pipeline.team == team, Pipeline.name == name))
    valid = (
        pipeline is not None
        and pipeline.deleted_at is None
        and pipeline.trigger == HTTP
        and pipeline.trigger_token_hash
        and hmac.compare_digest(pipeline.trigger_token_hash, _hash(token or ""))
    )
    if not valid:
        raise Forbidden("not a valid trigger token for this pipeline")
    return pipeline


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
