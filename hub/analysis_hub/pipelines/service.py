"""The pipelines service's behaviour, apart from HTTP: publish, deploy, roll back, run, audit.

Contract: `Pipelines` methods take the calling `Caller` (hub user name,
groups, admin flag) and raise `Forbidden` (403), `NotFound` (404),
`Conflict` (409), `TooLarge` (413), or `SpecError`/`NotebookError`/
`ProfileRequestError` (400) with a message for the user. A refused request
changes nothing. Only members of a pipeline's team (a hub group) and admins
may see or change it. Every change adds an audit event with the state before
and after. Schedules live in the database and are re-registered at start, so
they survive restarts of the hub and of this service, and keep running while
their authors' servers are culled.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import nbformat
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import func, select

from ..backends.kubernetes.profiles import ClusterFacts, pod_override
from ..catalog_source import CatalogSource
from ..selection import select_profile
from . import notify
from .argo import argo_manifests
from .executor import RunOutcome
from .models import FINISHED, AuditEvent, Pipeline, Run, Version, now
from .notebooks import kernel_name, notebook_parameters, read_notebook, strip_outputs
from .repository import TeamRepository
from .specs import (
    SpecError,
    check_deployment,
    check_name,
    declared_parameters,
    run_parameters,
    run_spec,
    stored_profile,
    version_settings,
)

log = logging.getLogger(__name__)


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


class Pipelines:
    def __init__(
        self,
        sessions,
        data_dir: Path,
        catalog: CatalogSource,
        runner,
        public_url: str,
        max_bytes: int,
        gpus_available: int = 0,
        cluster: ClusterFacts | None = None,
        output_url: str = "",
    ):
        self.sessions = sessions
        self.repos_root = data_dir / "repos"
        self.runs_root = data_dir / "runs"
        self.catalog = catalog
        self.runner = runner
        self.public_url = public_url.rstrip("/")
        self.max_bytes = max_bytes
        self.gpus_available = gpus_available
        self.cluster = cluster
        self.output_url = output_url
        self.scheduler = AsyncIOScheduler()
        self._team_locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task] = set()

    # -- start-up ---------------------------------------------------------

    def start(self) -> None:
        """Mark runs a previous process left unfinished, and register every schedule."""
        with self.sessions.begin() as db:
            for run in db.scalars(select(Run).where(Run.status.in_(("queued", "running")))):
                run.status, run.finished_at = "failed", now()
                run.reason = "interrupted: the pipelines service stopped during the run"
            pipelines = list(db.scalars(select(Pipeline).where(Pipeline.deleted_at.is_(None))))
        self.scheduler.start()
        for pipeline in pipelines:
            self._sync_schedule(pipeline)

    # -- reading ------------------------------------------------------------

    def list_pipelines(self, caller: Caller) -> list[dict]:
        with self.sessions() as db:
            rows = db.scalars(
                select(Pipeline).where(Pipeline.deleted_at.is_(None)).order_by(Pipeline.team, Pipeline.name)
            )
            return [self._summary(db, p) for p in rows if caller.member_of(p.team)]

    def describe(self, caller: Caller, team: str, name: str) -> dict:
        with self.sessions() as db:
            pipeline = self._get(db, caller, team, name)
            return {
                **self._summary(db, pipeline),
                "versions": [_version_dict(v) for v in pipeline.versions],
                "runs": [_run_dict(r) for r in self._runs(db, pipeline, limit=50)],
            }

    def version_notebook(self, caller: Caller, team: str, name: str, number: int) -> str:
        with self.sessions() as db:
            version = self._version(db, self._get(db, caller, team, name), number)
        return TeamRepository(self.repos_root, team).read(version.commit, name)[0]

    def diff(self, caller: Caller, team: str, name: str, a: int, b: int) -> str:
        import nbdime
        from nbdime.prettyprint import PrettyPrintConfig, pretty_print_diff

        left = nbformat.reads(self.version_notebook(caller, team, name, a), as_version=4)
        right = nbformat.reads(self.version_notebook(caller, team, name, b), as_version=4)
        lines: list[str] = []

        class Collect:
            def write(self, text):
                lines.append(text)

        pretty_print_diff(
            left, nbdime.diff_notebooks(left, right), "notebook", PrettyPrintConfig(out=Collect())
        )
        return "".join(lines) or "(no differences)\n"

    def argo(self, caller: Caller, team: str, name: str) -> list[dict]:
        """The Argo Workflows objects that run the active version on Kubernetes."""
        if self.cluster is None:
            raise SpecError(
                "Argo manifests need backend: kubernetes (with kubernetes.images) in the settings"
            )
        with self.sessions() as db:
            pipeline = self._get(db, caller, team, name)
            if not pipeline.deployed:
                raise SpecError(f"{team}/{name} is not deployed; deploy a version first")
            version = self._version(db, pipeline, pipeline.active_version)
            deployment = pipeline.deployment()
        notebook = self.version_notebook(caller, team, name, version.number)
        pod = pod_override(stored_profile(version), self.cluster)
        version_facts = {"number": version.number, "kernel": version.kernel, "notebook": notebook}
        return argo_manifests(team, name, version_facts, deployment, pod, self.output_url)

    def runs(self, caller: Caller, team: str, name: str) -> list[dict]:
        with self.sessions() as db:
            return [_run_dict(r) for r in self._runs(db, self._get(db, caller, team, name), limit=500)]

    def run(self, caller: Caller, run_id: int) -> tuple[dict, Path]:
        with self.sessions() as db:
            run = db.get(Run, run_id)
            if run is None:
                raise NotFound(f"no run {run_id}")
            if not caller.member_of(run.pipeline.team):
                raise Forbidden(f"run {run_id} belongs to another team's pipeline")
            return {
                **_run_dict(run),
                "team": run.pipeline.team,
                "pipeline": run.pipeline.name,
            }, self.runs_root / str(run.id)

    def audit(self, caller: Caller, team: str | None = None, name: str | None = None) -> list[dict]:
        with self.sessions() as db:
            query = select(AuditEvent).order_by(AuditEvent.id)
            if team:
                query = query.where(AuditEvent.team == team)
            if name:
                query = query.where(AuditEvent.pipeline == name)
            return [_audit_dict(e) for e in db.scalars(query) if caller.member_of(e.team)]

    # -- changing -----------------------------------------------------------

    async def publish(
        self,
        caller: Caller,
        team: str,
        name: str,
        notebook: bytes | str | dict,
        profile: str,
        choices: dict | None = None,
        message: str = "",
        parent: int | None = None,
    ) -> dict:
        check_name("team", team)
        check_name("pipeline", name)
        if not caller.member_of(team):
            raise Forbidden(f"only members of {team} (and admins) may publish its pipelines")
        size = len(notebook) if isinstance(notebook, bytes | str) else 0
        if size > self.max_bytes:
            raise TooLarge(
                f"the notebook is {size / 2**20:.1f} MiB; the limit is {self.max_bytes // 2**20} MiB"
            )
        nb = read_notebook(notebook)
        parameters = notebook_parameters(nb)
        # The profile must be one the team may use, as in the spawn form.
        resolved = select_profile(self.catalog.current(), {team}, {**(choices or {}), "profile": profile})
        # On this machine a GPU version could never run; a cluster has GPU nodes.
        if self.cluster is None and resolved.resources.gpus > self.gpus_available:
            raise SpecError(
                f"profile {profile!r} with {resolved.choices} needs {resolved.resources.gpus} GPU(s) and"
                f" this machine has {self.gpus_available}; choose a CPU option"
            )
        text = nbformat.writes(strip_outputs(nb))
        async with self._team_locks.setdefault(team, asyncio.Lock()):
            with self.sessions.begin() as db:
                pipeline = db.scalar(select(Pipeline).where(Pipeline.team == team, Pipeline.name == name))
                if pipeline is not None and pipeline.deleted_at is not None:
                    raise Conflict(f"{team}/{name} was deleted; publish under another name")
                latest = max((v.number for v in pipeline.versions), default=0) if pipeline else 0
                if parent is not None and parent != latest:
                    raise Conflict(
                        f"{team}/{name} is at v{latest}, not v{parent}: someone published meanwhile;"
                        " look at the new version and publish again"
                    )
                if pipeline is None:
                    pipeline = Pipeline(team=team, name=name, created_by=caller.name, parameters={})
                    db.add(pipeline)
                    db.flush()
                number = latest + 1
                metadata = {
                    "profile": resolved.slug,
                    "choices": resolved.choices,
                    "resources": version_settings(resolved),
                    "image": resolved.image,
                    "parameters": {k: p.to_json() for k, p in parameters.items()},
                    "kernel": kernel_name(nb),
                    "message": message,
                    "published_by": caller.name,
                }
                commit = await asyncio.to_thread(
                    TeamRepository(self.repos_root, team).commit,
                    name,
                    number,
                    text,
                    metadata,
                    caller.name,
                    message,
                )
                version = Version(pipeline_id=pipeline.id, number=number, commit=commit, **metadata)
                db.add(version)
                after = {"version": number, "commit": commit, "profile": resolved.slug, "message": message}
                db.add(AuditEvent(actor=caller.name, action="publish", team=team, pipeline=name, after=after))
            return _version_dict(version)

    def deploy(self, caller: Caller, team: str, name: str, request: dict) -> dict:
        """Change the deployment; fields the request leaves out keep their values."""
        with self.sessions.begin() as db:
            pipeline = self._get(db, caller, team, name)
            version_numbers = [v.number for v in pipeline.versions]
            current = pipeline.deployment()
            current["version"] = current.pop("active_version") or (
                version_numbers[-1] if version_numbers else None
            )
            request = dict(request)
            if "schedule" in request and "trigger" not in request:
                request["trigger"] = "cron" if request["schedule"] else "manual"
            if request.get("trigger") in ("manual", "http"):
                request.setdefault("schedule", None)
            merged = {**current, **request}
            version = merged["version"]
            declared = declared_parameters(
                self._version(db, pipeline, version).parameters if version in version_numbers else {}
            )
            fields = check_deployment(merged, declared, version_numbers)
            before = pipeline.deployment()
            for key, value in fields.items():
                setattr(pipeline, key, value)
            token = None
            if pipeline.trigger == "http" and (
                request.get("new_trigger_token") or not pipeline.trigger_token_hash
            ):
                token = secrets.token_urlsafe(32)
                pipeline.trigger_token_hash = _hash(token)
            after = pipeline.deployment()
            only_paused = {k for k in after if after[k] != before[k]} == {"paused"}
            action = ("pause" if pipeline.paused else "resume") if only_paused else "deploy"
            db.add(
                AuditEvent(
                    actor=caller.name, action=action, team=team, pipeline=name, before=before, after=after
                )
            )
            self._sync_schedule(pipeline)
            summary = self._summary(db, pipeline)
        return {**summary, **({"trigger_token": token} if token else {})}

    def rollback(self, caller: Caller, team: str, name: str, to: int) -> dict:
        with self.sessions.begin() as db:
            pipeline = self._get(db, caller, team, name)
            self._version(db, pipeline, to)
            if not pipeline.deployed:
                raise SpecError(f"{team}/{name} is not deployed; deploy it first")
            before = pipeline.deployment()
            pipeline.active_version = to
            db.add(
                AuditEvent(
                    actor=caller.name,
                    action="rollback",
                    team=team,
                    pipeline=name,
                    before=before,
                    after=pipeline.deployment(),
                )
            )
            return self._summary(db, pipeline)

    def delete(self, caller: Caller, team: str, name: str) -> None:
        with self.sessions.begin() as db:
            pipeline = self._get(db, caller, team, name)
            before = pipeline.deployment()
            pipeline.deleted_at = now()
            db.add(AuditEvent(actor=caller.name, action="delete", team=team, pipeline=name, before=before))
        self._sync_schedule(pipeline)

    # -- running ------------------------------------------------------------

    async def run_now(self, caller: Caller, team: str, name: str, parameters: dict | None = None) -> dict:
        with self.sessions() as db:
            pipeline_id = self._get(db, caller, team, name).id
        return await self.start_run(pipeline_id, "manual", caller.name, parameters)

    async def run_by_http_trigger(
        self, team: str, name: str, token: str, parameters: dict | None = None
    ) -> dict:
        with self.sessions() as db:
            pipeline = db.scalar(select(Pipeline).where(Pipeline.team == team, Pipeline.name == name))
            valid = (
                pipeline is not None
                and pipeline.deleted_at is None
                and pipeline.trigger == "http"
                and pipeline.trigger_token_hash
                and hmac.compare_digest(pipeline.trigger_token_hash, _hash(token or ""))
            )
            if not valid:
                raise Forbidden("not a valid trigger token for this pipeline")
            pipeline_id = pipeline.id
        return await self.start_run(pipeline_id, "http", "http-trigger", parameters)

    async def start_run(
        self, pipeline_id: int, trigger: str, actor: str, parameters: dict | None = None, scheduled_for=None
    ) -> dict:
        with self.sessions.begin() as db:
            pipeline = db.get(Pipeline, pipeline_id)
            if not pipeline.deployed:
                raise SpecError(f"{pipeline.team}/{pipeline.name} is not deployed; deploy a version first")
            version = self._version(db, pipeline, pipeline.active_version)
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
            )
            busy = db.scalar(
                select(func.count()).where(
                    Run.pipeline_id == pipeline.id, Run.status.in_(("queued", "running"))
                )
            )
            if busy and pipeline.concurrency == "forbid":
                run.status, run.finished_at = "skipped", now()
                run.reason = "skipped: the previous run is still going (concurrency: forbid)"
            db.add(run)
            db.flush()
            after = {"run": run.id, "version": version.number, "trigger": trigger, "status": run.status}
            db.add(
                AuditEvent(actor=actor, action="run", team=pipeline.team, pipeline=pipeline.name, after=after)
            )
            result = _run_dict(run)
        if result["status"] == "queued":
            task = asyncio.create_task(self._execute(result["id"]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return result

    async def _execute(self, run_id: int) -> None:
        with self.sessions() as db:
            run = db.get(Run, run_id)
            pipeline, version = run.pipeline, self._version(db, run.pipeline, run.version)
            spec = run_spec(
                run.id, pipeline.team, pipeline.name, version, pipeline.timeout, dict(run.parameters)
            )
            retries, team, name, commit = pipeline.retries, pipeline.team, pipeline.name, version.commit
        notebook, _ = await asyncio.to_thread(TeamRepository(self.repos_root, team).read, commit, name)
        for attempt in range(1, retries + 2):
            with self.sessions.begin() as db:
                run = db.get(Run, run_id)
                run.status, run.attempts = "running", attempt
                run.started_at = run.started_at or now()
                run.output_dir = str(self.runs_root / str(run_id))
            try:
                outcome = await self.runner.run(spec, notebook, self.runs_root / str(run_id))
            except Exception as e:  # a runner bug must not leave the run "running" forever
                log.exception("run %s failed to run", run_id)
                outcome = RunOutcome("failed", None, f"the run could not be started: {e}")
            if outcome.status == "succeeded":
                break
        with self.sessions.begin() as db:
            run = db.get(Run, run_id)
            run.status, run.exit_code, run.reason = outcome.status, outcome.exit_code, outcome.reason
            run.error_cell, run.finished_at = outcome.error_cell, now()
            result, notify_url, on_success = (
                _run_dict(run),
                run.pipeline.notify_url,
                run.pipeline.notify_on_success,
            )
        log.info("run %s of %s/%s: %s %s", run_id, team, name, result["status"], result["reason"])
        if notify_url and (result["status"] != "succeeded" or on_success):
            url = f"{self.public_url}/services/pipelines/runs/{run_id}"
            await notify.send(notify_url, notify.run_message(team, name, result, url))

    def _sync_schedule(self, pipeline: Pipeline) -> None:
        job_id = f"pipeline-{pipeline.id}"
        if self.scheduler.get_job(job_id):
            self.scheduler.remove_job(job_id)
        if pipeline.deleted_at or pipeline.paused or pipeline.trigger != "cron" or not pipeline.deployed:
            return
        trigger = CronTrigger.from_crontab(pipeline.schedule, timezone=pipeline.timezone)
        self.scheduler.add_job(
            self._scheduled_run,
            trigger,
            id=job_id,
            args=[pipeline.id],
            coalesce=True,
            misfire_grace_time=60,
            max_instances=100,  # our own concurrency policy decides, and records skips
        )

    async def _scheduled_run(self, pipeline_id: int) -> None:
        try:
            await self.start_run(pipeline_id, "schedule", "schedule", scheduled_for=now())
        except Exception:
            log.exception("scheduled run of pipeline %s could not start", pipeline_id)

    # -- helpers ------------------------------------------------------------

    def _get(self, db, caller: Caller, team: str, name: str) -> Pipeline:
        pipeline = db.scalar(select(Pipeline).where(Pipeline.team == team, Pipeline.name == name))
        if pipeline is None or pipeline.deleted_at is not None:
            raise NotFound(f"no pipeline {team}/{name}")
        if not caller.member_of(team):
            raise Forbidden(f"only members of {team} (and admins) may see or change its pipelines")
        return pipeline

    def _version(self, db, pipeline: Pipeline, number) -> Version:
        version = next((v for v in pipeline.versions if v.number == number), None)
        if version is None:
            numbers = [v.number for v in pipeline.versions]
            raise NotFound(f"{pipeline.team}/{pipeline.name} has no version {number!r} (versions: {numbers})")
        return version

    def _runs(self, db, pipeline: Pipeline, limit: int) -> list[Run]:
        query = select(Run).where(Run.pipeline_id == pipeline.id).order_by(Run.id.desc()).limit(limit)
        return list(db.scalars(query))

    def _summary(self, db, pipeline: Pipeline) -> dict:
        last = self._runs(db, pipeline, limit=1)
        job = self.scheduler.get_job(f"pipeline-{pipeline.id}") if self.scheduler.running else None
        return {
            "team": pipeline.team,
            "name": pipeline.name,
            "created_by": pipeline.created_by,
            "latest_version": max((v.number for v in pipeline.versions), default=None),
            **pipeline.deployment(),
            "next_run": job.next_run_time.isoformat() if job and job.next_run_time else None,
            "last_run": _run_dict(last[0]) if last else None,
        }


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() + "Z" if value else None


def _version_dict(v: Version) -> dict:
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
        "published_at": _iso(v.published_at),
    }


def _run_dict(r: Run) -> dict:
    return {
        "id": r.id,
        "version": r.version,
        "status": r.status,
        "finished": r.status in FINISHED,
        "trigger": r.trigger,
        "started_by": r.started_by,
        "parameters": r.parameters,
        "attempts": r.attempts,
        "created_at": _iso(r.created_at),
        "scheduled_for": _iso(r.scheduled_for),
        "started_at": _iso(r.started_at),
        "finished_at": _iso(r.finished_at),
        "exit_code": r.exit_code,
        "reason": r.reason,
        "error_cell": r.error_cell,
    }


def _audit_dict(e: AuditEvent) -> dict:
    return {
        "id": e.id,
        "at": _iso(e.at),
        "actor": e.actor,
        "action": e.action,
        "team": e.team,
        "pipeline": e.pipeline,
        "before": e.before,
        "after": e.after,
    }
