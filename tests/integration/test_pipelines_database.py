"""The pipelines database's migrations, on SQLite and on a real PostgreSQL (Debian's, started by the tests).

Each test gets an empty database of each kind. Alembic's own comparison of a
migrated database with the models is the check that the migrations build
exactly the schema the code uses.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from datetime import datetime

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from analysis_hub.pipelines.store.models import MIGRATIONS, Base, open_database

pytestmark = pytest.mark.postgres

TABLES = {"alembic_version", "pipelines", "versions", "runs", "audit", "replicas", "step_runs"}


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path, postgres) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'pipelines.sqlite'}"
    return postgres.database(f"migrations_{uuid.uuid4().hex[:12]}")


def alembic(engine, action: str, revision: str) -> None:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        getattr(command, action)(config, revision)


def head() -> str:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


def tables(engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def test_an_empty_database_is_migrated_to_exactly_the_models_schema(empty_url):
    """open_database brings an empty database to the newest revision, and the result matches the
    models column for column, constraint for constraint (Alembic's autogenerate finds nothing to do)."""
    engine = open_database(empty_url).kw["bind"]
    assert tables(engine) == TABLES
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert differences == []
        assert connection.scalar(sa.text("SELECT version_num FROM alembic_version")) == head()
    engine.dispose()


def test_downgrades_step_back_to_nothing_and_up_again(empty_url):
    """Every migration has a working downgrade: head -> 0003 removes the workflows' additions (0004),
    -> 0002 the replicas' (0003), -> base everything, and the database upgrades to head again."""
    engine = open_database(empty_url).kw["bind"]
    alembic(engine, "downgrade", "0003")
    assert tables(engine) == TABLES - {"step_runs"}
    assert not {"repair_of", "upstream_run"} & {c["name"] for c in sa.inspect(engine).get_columns("runs")}
    assert "steps" not in {c["name"] for c in sa.inspect(engine).get_columns("versions")}
    alembic(engine, "downgrade", "0002")
    assert tables(engine) == TABLES - {"replicas", "step_runs"}
    assert "replica" not in {c["name"] for c in sa.inspect(engine).get_columns("runs")}
    alembic(engine, "downgrade", "base")
    assert tables(engine) == {"alembic_version"}
    alembic(engine, "upgrade", "head")
    assert tables(engine) == TABLES
    engine.dispose()


AT = datetime(2026, 1, 1)
PIPELINE = {
    **{"id": 1, "team": "data-team", "name": "daily", "created_at": AT, "created_by": "alice"},
    **{"trigger": "cron", "timezone": "UTC", "parameters": "{}", "concurrency": "forbid", "timeout": 3600},
    **{"retries": 0, "paused": False, "notify_on_success": False},
}
RUN = {
    **{"pipeline_id": 1, "version": 1, "status": "succeeded", "trigger": "manual", "started_by": "alice"},
    **{"parameters": '{"n": 4}', "attempts": 1, "created_at": AT, "reason": ""},
}


def insert(db, table: str, row: dict) -> None:
    """A row as the revision at hand has it (lightweight table: no model involved)."""
    db.execute(sa.table(table, *map(sa.column, row)).insert().values(row))


def test_a_first_release_database_keeps_its_runs_through_the_upgrade(empty_url):
    """A database at 0001 with a pipeline and a run upgrades to head: rows stay, the run has no replica.
    (0002 renames the schedule's trigger; 0003 adds the replicas' columns and table.)"""
    engine = sa.create_engine(empty_url)
    alembic(engine, "upgrade", "0001")
    with engine.begin() as db:
        insert(db, "pipelines", PIPELINE)
        insert(db, "runs", {**RUN, "id": 7})
    engine.dispose()
    engine = open_database(empty_url).kw["bind"]
    with engine.connect() as db:
        row = db.execute(sa.text("SELECT id, status, parameters, replica FROM runs")).one()
    assert (row.id, row.status, row.replica) == (7, "succeeded", None)
    engine.dispose()


def test_a_fire_time_has_one_run_at_most_and_manual_runs_any_number(empty_url):
    """The constraint the replicas' claim rests on: a second run for the same (pipeline, scheduled time)
    is refused by the database; runs without a scheduled time (manual, HTTP) are not limited."""
    engine = open_database(empty_url).kw["bind"]
    fire = datetime(2026, 1, 1, 6, 0)
    with engine.begin() as db:
        insert(db, "pipelines", PIPELINE)
        for scheduled_for in (None, None, fire):
            insert(db, "runs", {**RUN, "scheduled_for": scheduled_for})
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as db:
        insert(db, "runs", {**RUN, "scheduled_for": fire})
    with engine.connect() as db:
        assert db.scalar(sa.text("SELECT count(*) FROM runs")) == 3
    engine.dispose()


def test_replicas_starting_together_migrate_once(postgres):
    """Four service processes opening one empty PostgreSQL database at the same moment all start: one
    migrates, the others wait for it (an advisory lock) instead of failing on tables created under them."""
    url = postgres.database(f"together_{uuid.uuid4().hex[:12]}")
    at = time.time() + 5  # every process imported by then: they open the database together
    code = (
        "import time; from analysis_hub.pipelines.store.models import open_database;"
        f" time.sleep(max(0, {at} - time.time())); open_database({url!r})"
    )
    starting = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE) for _ in range(4)]
    errors = [p.communicate(timeout=120)[1].decode()[-2000:] for p in starting]
    assert [p.returncode for p in starting] == [0, 0, 0, 0], errors
    engine = sa.create_engine(url)
    with engine.connect() as db:
        assert db.scalar(sa.text("SELECT version_num FROM alembic_version")) == head()
    engine.dispose()
