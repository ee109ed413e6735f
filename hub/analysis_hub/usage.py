"""Usage for chargeback: server sessions the hub records, pipeline runs the service records.

Contract:
- `UsageLog(path)` is a small SQLite file in the hub's state folder
  (`usage.sqlite`). The spawner opens a session when a server has started
  (`open_session`: user, server name, profile, team, the profile's CPU and
  memory guarantees and GPUs) and closes it when the hub stops it or finds it
  gone (`close_session`). A session's id lives in the spawner state, so a
  hub restart in the middle loses nothing: the open row is closed at the
  eventual stop. Writes are one short transaction each.
- `report(sessions, since, until, by)` is pure: it clips each interval to
  [since, until] (an open one ends at `until`) and sums, per key
  (`team`, `user` or `profile`) and kind (`server`, `pipeline`):
  hours, CPU-hours and memory-GiB-hours *reserved* (the guarantees; the
  limit where no guarantee is set) and GPU-hours.
- `pipeline_sessions(database_url, since)` reads the pipelines service's runs
  (started, finished, the version's profile and resources, the pipeline's team,
  who started it) as the same `Session` rows.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

USAGE_FILE = "usage.sqlite"  # in the hub's state folder
BY = ("team", "user", "profile")
COLUMNS = ("hours", "cpu_hours", "memory_gib_hours", "gpu_hours")
SCHEMA = """
CREATE TABLE IF NOT EXISTS server_sessions (
    id INTEGER PRIMARY KEY,
    user TEXT NOT NULL, server TEXT NOT NULL, profile TEXT NOT NULL, team TEXT NOT NULL,
    cpu REAL NOT NULL, memory_bytes INTEGER NOT NULL, gpus INTEGER NOT NULL,
    started_at REAL NOT NULL, stopped_at REAL
)
"""


@dataclass(frozen=True)
class Session:
    kind: str  # server | pipeline
    user: str
    team: str
    profile: str
    cpu: float
    memory_bytes: int
    gpus: int
    started_at: float  # Unix seconds
    stopped_at: float | None  # None: still running


def reserved(guarantee, limit) -> float:
    """What a profile reserves: its guarantee, else its limit, else nothing."""
    return float(guarantee if guarantee is not None else limit if limit is not None else 0)


class UsageLog:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        with self._connect() as db:
            db.execute(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return sqlite3.connect(self.path, timeout=10)

    def open_session(self, *, user, server, profile, team, cpu, memory_bytes, gpus, at: float) -> int:
        with self._connect() as db:
            cursor = db.execute(
                "INSERT INTO server_sessions (user, server, profile, team, cpu, memory_bytes, gpus,"
                " started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (user, server, profile, team, cpu, int(memory_bytes), gpus, at),
            )
            return cursor.lastrowid

    def close_session(self, session_id: int, at: float) -> None:
        with self._connect() as db:
            db.execute(
                "UPDATE server_sessions SET stopped_at = ? WHERE id = ? AND stopped_at IS NULL",
                (at, session_id),
            )

    def sessions(self, since: float) -> list[Session]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT user, team, profile, cpu, memory_bytes, gpus, started_at, stopped_at"
                " FROM server_sessions WHERE stopped_at IS NULL OR stopped_at >= ?",
                (since,),
            ).fetchall()
        return [Session("server", *row) for row in rows]


def pipeline_sessions(database_url: str, since: float) -> list[Session]:
    from sqlalchemy import or_, select

    from .pipelines.store.models import Run, open_database

    sessions = open_database(database_url)
    cutoff = datetime.fromtimestamp(since, UTC).replace(tzinfo=None)
    found = []
    with sessions() as db:
        query = select(Run).where(
            Run.started_at.is_not(None), or_(Run.finished_at.is_(None), Run.finished_at >= cutoff)
        )
        for run in db.scalars(query):
            version = next(v for v in run.pipeline.versions if v.number == run.version)
            r = version.resources
            found.append(
                Session(
                    "pipeline",
                    run.started_by,
                    run.pipeline.team,
                    version.profile,
                    reserved(r.get("cpu_guarantee"), r.get("cpu_limit")),
                    int(reserved(r.get("memory_guarantee"), r.get("memory_limit"))),
                    int(r.get("gpus") or 0),
                    _unix(run.started_at),
                    _unix(run.finished_at) if run.finished_at else None,
                )
            )
    return found


def _unix(moment: datetime) -> float:
    return moment.replace(tzinfo=UTC).timestamp()  # the service stores naive UTC


def report(sessions: list[Session], since: float, until: float, by: str) -> list[dict]:
    if by not in BY:
        raise ValueError(f"--by {by!r}: one of {', '.join(BY)}")
    totals: dict[tuple[str, str], dict[str, float]] = {}
    for s in sessions:
        start, stop = max(s.started_at, since), min(s.stopped_at or until, until)
        if stop <= start:
            continue
        hours = (stop - start) / 3600
        row = totals.setdefault((getattr(s, by), s.kind), dict.fromkeys(COLUMNS, 0.0))
        row["hours"] += hours
        row["cpu_hours"] += hours * s.cpu
        row["memory_gib_hours"] += hours * s.memory_bytes / 2**30
        row["gpu_hours"] += hours * s.gpus
    return [{by: key, "kind": kind, **values} for (key, kind), values in sorted(totals.items())]


def parse_since(text: str, now: datetime) -> datetime:
    """`30d`, `12h`, `90m` or `45s` before `now`, or an ISO date/time (UTC)."""
    match = re.fullmatch(r"(\d+)([dhms])", text.strip())
    if match:
        unit = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}[match[2]]
        return now - timedelta(**{unit: int(match[1])})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"--since {text!r}: a duration such as 30d, 12h, 90m, 45s or an ISO date (2026-11-01)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
