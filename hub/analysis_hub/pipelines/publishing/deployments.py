"""Deployments: which version runs, on which trigger, with what; rollback, pause, resume, delete.

Contract:
- `deploy(caller, team, name, request)` changes a pipeline's deployment;
  fields the request leaves out keep their values (`specs.merge_deployment`,
  where the trigger vocabulary's defaults apply: `triggers.py`). The merged
  deployment is validated as a whole (`specs.check_deployment`) and a bad one
  is refused with every bad field named, changing nothing. A change of only
  `paused` is audited as `pause`/`resume`, anything else as `deploy`, with
  the deployment before and after. A chained trigger (`after`) is checked
  for the upstream team's consent and for loops (`chains.py`). An `http` trigger gets a token (returned
  once, stored hashed) when it has none or the request asks for a new one.
- `rollback(caller, team, name, to)` points a deployed pipeline at an
  earlier version; nothing is rebuilt.
- Before a deploy or rollback is stored, the executor prepares the version
  (`Executor.prepare`: no backend stores anything ahead today); if that
  fails, nothing changes.
- `delete` hides the pipeline (its runs, versions and git history stay) and
  stops its schedule; the name can't be reused.
- After each change the schedule is synced (`scheduler.Schedules.sync`).
"""

from __future__ import annotations

from ..access import Caller, find_pipeline, new_trigger_token
from ..engine.chains import check_chain
from ..engine.executor import Executor
from ..engine.scheduler import Schedules
from ..engine.steps import deployment_specs
from ..store.models import AuditEvent, Pipeline, Version, now
from ..triggers import HTTP
from .specs import (
    SpecError,
    check_deployment,
    declared_parameters,
    merge_deployment,
    run_parameters,
)
from .versions import find_version


class Deployments:
    def __init__(self, *, sessions, executor: Executor, schedules: Schedules):
        self.sessions = sessions
        self.executor = executor
        self.schedules = schedules

    async def deploy(self, caller: Caller, team: str, name: str, request: dict) -> str | None:
        """Change the deployment; returns a new HTTP trigger token, if one was made."""
        with self.sessions.begin() as db:
            pipeline = find_pipeline(db, caller, team, name)
            numbers = [v.number for v in pipeline.versions]
            current = pipeline.deployment()
            current["version"] = current.pop("active_version") or (numbers[-1] if numbers else None)
            merged = merge_deployment(current, request)
            chosen = merged["version"]
            declared = declared_parameters(
                find_version(pipeline, chosen).parameters if chosen in numbers else {}
            )
            fields = check_deployment(merged, declared, numbers)
            before = pipeline.deployment()
            # Pausing or resuming alone changes no version: nothing for the executor to prepare,
            # and no chain to check (a chain whose consent was withdrawn can still be paused).
            pausing = {key for key, value in fields.items() if before.get(key) != value} == {"paused"}
            if not pausing:
                check_chain(db, pipeline, fields)
                version = find_version(pipeline, fields["active_version"])
                await self._prepare(pipeline, version, fields["timeout"], fields["parameters"])
            for key, value in fields.items():
                setattr(pipeline, key, value)
            token = None
            if pipeline.trigger == HTTP and (
                request.get("new_trigger_token") or not pipeline.trigger_token_hash
            ):
                token, pipeline.trigger_token_hash = new_trigger_token()
            after = pipeline.deployment()
            action = ("pause" if pipeline.paused else "resume") if pausing else "deploy"
            db.add(
                AuditEvent(
                    actor=caller.name, action=action, team=team, pipeline=name, before=before, after=after
                )
            )
        self.schedules.sync(pipeline)
        return token

    async def rollback(self, caller: Caller, team: str, name: str, to: int) -> None:
        with self.sessions.begin() as db:
            pipeline = find_pipeline(db, caller, team, name)
            version = find_version(pipeline, to)
            if not pipeline.deployed:
                raise SpecError(f"{team}/{name} is not deployed; deploy it first")
            await self._prepare(pipeline, version, pipeline.timeout, pipeline.parameters)
            before = pipeline.deployment()
            pipeline.active_version = to
            after = pipeline.deployment()
            db.add(
                AuditEvent(
                    actor=caller.name, action="rollback", team=team, pipeline=name, before=before, after=after
                )
            )

    def delete(self, caller: Caller, team: str, name: str) -> None:
        with self.sessions.begin() as db:
            pipeline = find_pipeline(db, caller, team, name)
            before = pipeline.deployment()
            pipeline.deleted_at = now()
            db.add(AuditEvent(actor=caller.name, action="delete", team=team, pipeline=name, before=before))
        self.schedules.sync(pipeline)

    async def _prepare(self, pipeline: Pipeline, version: Version, timeout: int, parameters: dict) -> None:
        # Run id 0: no run exists yet; the spec is what every run of this deployment starts from.
        values = run_parameters(declared_parameters(version.parameters), parameters, {})
        for spec in deployment_specs(pipeline, version, timeout, values, pipeline.retries):
            await self.executor.prepare(spec)
