"""The pipelines service apart from HTTP: its parts composed, and what the pages read across them.

Contract:
- `Pipelines(sessions=..., config=PipelinesConfig(...), catalog=...,
  executor=...)` builds the parts and wires them together:

  | part          | module           | what it does                                   |
  |---------------|------------------|------------------------------------------------|
  | access        | `access.py`      | who may see, change, run (team membership)     |
  | `versions`    | `versions.py`    | publish: immutable versions in git + database  |
  | `deployments` | `deployments.py` | deploy, rollback, pause/resume, delete         |
  | `schedules`   | `scheduler.py`   | the `cron` trigger's timers                    |
  | `runs`        | `runs.py`        | start, execute (an `Executor`), retry, notify  |

  `web/app.py` calls the parts for what one part does alone (publish, run,
  delete...) and this object for what spans parts (summaries, deploy and
  rollback, which answer with the summary). Every method takes the
  calling `access.Caller` and raises `Forbidden` (403), `NotFound` (404),
  `Conflict` (409), `TooLarge` (413), or `SpecError`/`NotebookError`/
  `ProfileRequestError` (400) with a message for the user. A refused request
  changes nothing; every change adds an audit event.
- `start()` (in the running event loop) fails runs a previous process left
  unfinished and registers every schedule from the database.
- The read side lives here: a pipeline's summary combines its deployment,
  its last run and the schedule's next time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from ..catalog_source import CatalogSource
from .access import Caller, find_pipeline
from .engine.executor import Executor
from .engine.runs import Runs, recent_runs
from .engine.scheduler import Schedules
from .publishing.deployments import Deployments
from .publishing.versions import Versions
from .store.models import AuditEvent, Pipeline
from .web.views import audit_view, pipeline_summary, run_view, version_view


@dataclass(frozen=True)
class PipelinesConfig:
    data_dir: Path  # repos/ (git) and runs/ (run folders) live below it
    public_url: str  # the hub's public URL: links in notifications, the caller's server
    max_notebook_bytes: int
    gpus_available: int | None = 0  # GPUs on this machine a version may ask for; None: the cluster's
    replica: str = "local"  # this process's name among replicas sharing the database (replicas.py)


class Pipelines:
    def __init__(
        self,
        *,
        sessions,
        config: PipelinesConfig,
        catalog: CatalogSource,
        executor: Executor,
    ):
        self.sessions = sessions
        self.config = config
        self.executor = executor
        self.public_url = config.public_url.rstrip("/")
        self.versions = Versions(
            sessions=sessions,
            repos_root=config.data_dir / "repos",
            catalog=catalog,
            max_bytes=config.max_notebook_bytes,
            gpus_available=config.gpus_available,
        )
        self.runs = Runs(
            sessions=sessions,
            versions=self.versions,
            executor=executor,
            runs_root=config.data_dir / "runs",
            public_url=self.public_url,
            replica=config.replica,
        )
        self.schedules = Schedules(start_run=self.runs.start)
        self.deployments = Deployments(sessions=sessions, executor=executor, schedules=self.schedules)

    def start(self) -> None:
        self.runs.recover()
        self.schedules.start(self.sessions)

    # -- reading ------------------------------------------------------------

    def list_pipelines(self, caller: Caller) -> list[dict]:
        with self.sessions() as db:
            rows = db.scalars(
                select(Pipeline).where(Pipeline.deleted_at.is_(None)).order_by(Pipeline.team, Pipeline.name)
            )
            return [self._summary(db, p) for p in rows if caller.member_of(p.team)]

    def summary(self, caller: Caller, team: str, name: str) -> dict:
        with self.sessions() as db:
            return self._summary(db, find_pipeline(db, caller, team, name))

    def describe(self, caller: Caller, team: str, name: str) -> dict:
        with self.sessions() as db:
            pipeline = find_pipeline(db, caller, team, name)
            return {
                **self._summary(db, pipeline),
                "versions": [version_view(v) for v in pipeline.versions],
                "runs": [run_view(r) for r in recent_runs(db, pipeline, limit=50)],
            }

    def audit(self, caller: Caller, team: str | None = None, name: str | None = None) -> list[dict]:
        with self.sessions() as db:
            query = select(AuditEvent).order_by(AuditEvent.id)
            if team:
                query = query.where(AuditEvent.team == team)
            if name:
                query = query.where(AuditEvent.pipeline == name)
            return [audit_view(e) for e in db.scalars(query) if caller.member_of(e.team)]

    def _summary(self, db, pipeline: Pipeline) -> dict:
        last = recent_runs(db, pipeline, limit=1)
        return pipeline_summary(pipeline, last[0] if last else None, self.schedules.next_run(pipeline.id))

    # -- changes that answer with the summary -------------------------------

    async def deploy(self, caller: Caller, team: str, name: str, request: dict) -> dict:
        token = await self.deployments.deploy(caller, team, name, request)
        return {**self.summary(caller, team, name), **({"trigger_token": token} if token else {})}

    async def rollback(self, caller: Caller, team: str, name: str, to: int) -> dict:
        await self.deployments.rollback(caller, team, name, to)
        return self.summary(caller, team, name)
