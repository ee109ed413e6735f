"""The pipelines database: pipelines, their versions, runs and the audit trail.

Contract:
- SQLAlchemy 2 models; `open_database(url)` brings the schema up to date
  with Alembic migrations (`migrations/`) and returns a session factory.
  SQLite by default, PostgreSQL on Kubernetes (`postgresql://` URLs use
  psycopg 3): nothing else here is specific to either.
- Versions are immutable rows (the notebook itself lives in the team's git
  repository, named by `commit`). A pipeline points at one active version.
- Several service replicas may share one PostgreSQL: a run records the
  replica that follows it, each replica's heartbeat is a `Replica` row, and a
  scheduled fire time has at most one run (see replicas.py).
- `AuditEvent` rows are only ever added: who did what, when, with the state
  before and after.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint, create_engine, event, make_url, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, sessionmaker, validates

from ..triggers import MANUAL

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATIONS_LOCK = 0x616E616C79736973  # a PostgreSQL advisory lock key of our own ("analysis")

ONE_RUN_PER_FIRE = "uq_runs_pipeline_id_scheduled_for"
ONE_RUN_PER_UPSTREAM = "uq_runs_pipeline_id_upstream_run"


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)  # stored as naive UTC, as SQLite keeps it


class Base(DeclarativeBase):
    pass


class Pipeline(Base):
    __tablename__ = "pipelines"
    __table_args__ = (UniqueConstraint("team", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    team: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=now)
    created_by: Mapped[str] = mapped_column(String(255))
    active_version: Mapped[int | None]
    trigger: Mapped[str] = mapped_column(String(16), default=MANUAL)  # one of triggers.TRIGGERS
    schedule: Mapped[str | None] = mapped_column(String(255))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    parameters: Mapped[dict] = mapped_column(JSON, default=dict)
    concurrency: Mapped[str] = mapped_column(String(16), default="forbid")  # forbid | allow
    timeout: Mapped[int] = mapped_column(default=3600)
    retries: Mapped[int] = mapped_column(default=0)
    paused: Mapped[bool] = mapped_column(default=False)
    trigger_token_hash: Mapped[str | None] = mapped_column(String(128))
    notify_url: Mapped[str | None] = mapped_column(Text)
    notify_on_success: Mapped[bool] = mapped_column(default=False)
    # Trigger `after`: run when a run of `after_pipeline` ("team/name") ends as `after_on` says.
    after_pipeline: Mapped[str | None] = mapped_column(String(320))
    after_on: Mapped[str | None] = mapped_column(String(16))  # success | failure | any
    # Other teams whose pipelines may chain after this one (its own team always may).
    subscribers: Mapped[list | None] = mapped_column(JSON, default=list)
    # Deleting keeps the row (runs and the git history refer to it) but hides
    # it, stops its schedule and frees nothing: the name can't be reused.
    deleted_at: Mapped[datetime | None]

    versions: Mapped[list[Version]] = relationship(back_populates="pipeline", order_by="Version.number")

    @property
    def deployed(self) -> bool:
        return self.active_version is not None

    def deployment(self) -> dict:
        """The deploy state as the API, the audit trail and the page show it."""
        return {
            "active_version": self.active_version,
            "trigger": self.trigger,
            "schedule": self.schedule,
            "timezone": self.timezone,
            "parameters": dict(self.parameters or {}),
            "concurrency": self.concurrency,
            "timeout": self.timeout,
            "retries": self.retries,
            "paused": self.paused,
            "notify_url": self.notify_url,
            "notify_on_success": self.notify_on_success,
            "after_pipeline": self.after_pipeline,
            "after_on": self.after_on,
            "subscribers": list(self.subscribers or []),
        }


class Version(Base):
    __tablename__ = "versions"
    __table_args__ = (UniqueConstraint("pipeline_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipelines.id"))
    number: Mapped[int]
    commit: Mapped[str] = mapped_column(String(64))
    profile: Mapped[str] = mapped_column(String(64))
    choices: Mapped[dict] = mapped_column(JSON, default=dict)
    resources: Mapped[dict] = mapped_column(JSON, default=dict)
    image: Mapped[str] = mapped_column(String(255))
    parameters: Mapped[dict] = mapped_column(JSON, default=dict)  # name -> {type, default}
    kernel: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text, default="")
    # A workflow's steps (workflow.stored_steps); None for a single-notebook version, whose
    # one step is the columns above. The columns above are then the first step's.
    steps: Mapped[list | None] = mapped_column(JSON)
    published_by: Mapped[str] = mapped_column(String(255))
    published_at: Mapped[datetime] = mapped_column(default=now)

    pipeline: Mapped[Pipeline] = relationship(back_populates="versions")


class Run(Base):
    __tablename__ = "runs"
    # One run per scheduled fire time: with several service replicas, the one whose
    # insert wins runs it; the others hit this constraint and do nothing (replicas.py).
    # Likewise one run per upstream run for a chained trigger, whichever replica saw it end.
    __table_args__ = (
        UniqueConstraint("pipeline_id", "scheduled_for", name=ONE_RUN_PER_FIRE),
        UniqueConstraint("pipeline_id", "upstream_run", name=ONE_RUN_PER_UPSTREAM),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipelines.id"))
    version: Mapped[int]
    status: Mapped[str] = mapped_column(String(16), default="queued")  # see statuses.py
    trigger: Mapped[str] = mapped_column(String(16))  # what started it: one of triggers.TRIGGERS
    started_by: Mapped[str] = mapped_column(String(255))
    parameters: Mapped[dict] = mapped_column(JSON, default=dict)
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=now)
    scheduled_for: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    exit_code: Mapped[int | None]
    reason: Mapped[str] = mapped_column(Text, default="")
    error_cell: Mapped[int | None]
    output_dir: Mapped[str | None] = mapped_column(Text)
    # The service replica that started the run and follows it (settings: pipelines.replica).
    replica: Mapped[str | None] = mapped_column(String(255))
    repair_of: Mapped[int | None]  # the run this one repairs (re-runs from its failed steps)
    upstream_run: Mapped[int | None]  # the run whose end started this one (trigger `after`)

    pipeline: Mapped[Pipeline] = relationship()
    steps: Mapped[list[StepRun]] = relationship(order_by="StepRun.id", back_populates="run")


class StepRun(Base):
    """One step of a run: a notebook's execution or an approval gate's decision."""

    __tablename__ = "step_runs"
    __table_args__ = (UniqueConstraint("run_id", "step"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    step: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # notebook | approval
    # pending | running | waiting (a gate) | one of statuses.STEP_FINISHED
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    exit_code: Mapped[int | None]
    reason: Mapped[str] = mapped_column(Text, default="")
    error_cell: Mapped[int | None]
    outputs: Mapped[dict] = mapped_column(JSON, default=dict)  # analysis_hub_outputs.record
    # A repair keeps the steps that succeeded: their outputs and files are the earlier run's.
    reused_from: Mapped[int | None]
    # An approval gate: who may decide, until when; who decided, and why.
    approvers: Mapped[str | None] = mapped_column(String(255))
    deadline: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(255))
    comment: Mapped[str | None] = mapped_column(Text)

    run: Mapped[Run] = relationship(back_populates="steps")


class Replica(Base):
    """A service replica's heartbeat: a replica silent for long has died, and its runs with it."""

    __tablename__ = "replicas"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(default=now)
    seen_at: Mapped[datetime] = mapped_column(default=now)


# What an audit row says was done: the one vocabulary (the audit page filters by it).
AUDIT_ACTIONS = ("publish", "deploy", "rollback", "pause", "resume", "run", "cancel", "delete")
AUDIT_ACTIONS += ("repair", "approval-requested", "approve", "reject")


class AuditEvent(Base):
    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=now)
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(32))  # one of AUDIT_ACTIONS
    team: Mapped[str] = mapped_column(String(255))
    pipeline: Mapped[str] = mapped_column(String(64))
    before: Mapped[dict | None] = mapped_column(JSON)
    after: Mapped[dict | None] = mapped_column(JSON)

    @validates("action")
    def _one_of_the_actions(self, key: str, action: str) -> str:
        if action not in AUDIT_ACTIONS:
            raise ValueError(f"audit action {action!r}: one of {', '.join(AUDIT_ACTIONS)}")
        return action


def open_database(url: str) -> sessionmaker:
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        # The driver the package depends on (psycopg 3), not SQLAlchemy's default psycopg2.
        parsed = parsed.set(drivername="postgresql+psycopg")
    engine = create_engine(parsed, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        # Runs finish while the API reads: let writers wait instead of failing.
        event.listen(engine, "connect", lambda conn, _: conn.execute("PRAGMA busy_timeout = 10000"))
    migrate(engine)
    return sessionmaker(engine, expire_on_commit=False)


def migrate(engine) -> None:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Replicas starting together: one migrates, the others wait for its commit and
            # then find nothing to do (PostgreSQL's DDL is transactional; the lock ends with it).
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATIONS_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
