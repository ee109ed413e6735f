"""The pipelines service's round trip on a real PostgreSQL: publish -> deploy -> run -> rollback -> audit.

The service's objects are built in the test process exactly as `python -m
analysis_hub.pipelines` builds them (`__main__.build`), on a PostgreSQL
database of their own (Debian's server, started by the tests), with the real
local executor: papermill in the pyspark profile's environment (built from
the image's lock file once, reused from ANALYSIS_HUB_TEST_ROOT), as the team's
run user when the tests run as root. alice is in data-team, bob is not.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time

import nbformat
import pytest
import sqlalchemy as sa
import yaml
from analysis_hub.pipelines.access import Caller, Forbidden
from analysis_hub.pipelines.store.models import Run
from harness import make_workdir
from notebooks import make_notebook
from pipeline_replicas import ALICE, BOB, in_process, service_settings

pytestmark = [pytest.mark.postgres, pytest.mark.integration]

DAVE = Caller("dave", frozenset({"data-team", "ml-leads"}))
V1 = make_notebook("print(greeting * n)")
V2 = make_notebook("print('before the error')", "1/0", "print('never')")
TEAM, NAME = "data-team", "daily-report"


@pytest.fixture(scope="module")
def workdir():
    folder = make_workdir()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
async def service(postgres_url, workdir):
    pipelines = in_process(service_settings(workdir, postgres_url, "replica-a"))
    pipelines.start()
    yield pipelines
    pipelines.schedules.stop()


async def run_to_the_end(pipelines, timeout: float = 600) -> dict:
    run = await pipelines.runs.run_now(ALICE, TEAM, NAME)
    deadline = time.monotonic() + timeout
    while not run["finished"]:
        assert time.monotonic() < deadline, f"run {run['id']} did not finish in {timeout} s"
        await asyncio.sleep(0.3)
        run, _ = pipelines.runs.get(ALICE, run["id"])
    return run


def output_of(pipelines, run: dict) -> nbformat.NotebookNode:
    _, folder = pipelines.runs.get(ALICE, run["id"])
    return nbformat.read(folder / "output.ipynb", as_version=4)


async def test_publish_deploy_run_roll_back_and_audit_on_postgresql(service, postgres_url):
    """A team's week on PostgreSQL: v1 runs with the deployed parameter, v2 fails at its error cell, a
    rollback to v1 runs v1 again; the audit trail holds every step with its before and after, only for
    the team; every row is in PostgreSQL, each run recording the replica that ran it."""
    await service.versions.publish(ALICE, TEAM, NAME, json.dumps(V1), "pyspark", message="first")
    await service.deploy(ALICE, TEAM, NAME, {"version": 1, "parameters": {"n": 4}})
    first = await run_to_the_end(service)
    assert (first["status"], first["version"], first["parameters"]) == (
        "succeeded",
        1,
        {"n": 4, "greeting": "hi"},
    )
    printed = "".join(
        o.get("text", "") for c in output_of(service, first).cells for o in c.get("outputs", [])
    )
    assert "hihihihi" in printed

    await service.versions.publish(ALICE, TEAM, NAME, json.dumps(V2), "pyspark", message="divide", parent=1)
    await service.deploy(ALICE, TEAM, NAME, {"version": 2})
    second = await run_to_the_end(service)
    assert (second["status"], second["version"]) == ("failed", 2)
    assert "ZeroDivisionError" in second["reason"]
    assert output_of(service, second).cells[second["error_cell"]].source == "1/0"

    assert (await service.rollback(ALICE, TEAM, NAME, 1))["active_version"] == 1
    third = await run_to_the_end(service)
    assert (third["status"], third["version"]) == ("succeeded", 1)

    audit = service.audit(ALICE, TEAM, NAME)
    assert [e["action"] for e in audit] == [
        *("publish", "deploy", "run", "publish", "deploy", "run", "rollback", "run"),
    ]
    rollback = audit[6]
    assert (rollback["actor"], rollback["before"]["active_version"], rollback["after"]["active_version"]) == (
        "alice",
        2,
        1,
    )
    assert audit[0]["after"]["message"] == "first" and audit[1]["after"]["parameters"] == {"n": 4}
    assert service.audit(BOB) == []
    with pytest.raises(Forbidden):
        service.describe(BOB, TEAM, NAME)

    engine = sa.create_engine(postgres_url)
    with engine.connect() as db:
        runs = db.execute(sa.text("SELECT id, version, status, replica FROM runs ORDER BY id")).all()
        versions = db.scalar(sa.text("SELECT count(*) FROM versions"))
    engine.dispose()
    assert [tuple(r) for r in runs] == [
        (first["id"], 1, "succeeded", "replica-a"),
        (second["id"], 2, "failed", "replica-a"),
        (third["id"], 1, "succeeded", "replica-a"),
    ]
    assert versions == 2


GATED = {
    "steps": [
        {"name": "slow", "notebook": "slow.ipynb", "profile": "pyspark"},
        {"name": "review", "kind": "approval", "approvers": "ml-leads"},
        {"name": "ship", "notebook": "ship.ipynb", "profile": "pyspark", "depends_on": ["review"]},
    ]
}
SLOW = make_notebook("import time\ntime.sleep(seconds)", parameters="seconds = 20")
SHIP = make_notebook(
    "import os\nopen(os.environ['ANALYSIS_HUB_RUN_FOLDER'] + '/shipped.txt', 'a').write(line)",
    parameters="line = 'shipped\\n'",
)


async def test_a_gate_decided_through_another_replica_is_left_to_the_runs_driver(
    service, postgres_url, workdir, monkeypatch
):
    """One replica drives a run at a time. Replica b drives a workflow whose slow step runs beside an
    approval gate; the gate is decided through replica a, which doesn't drive the run (it is not
    waiting: slow is running). a runs nothing; b notices the decision at its next look, while slow
    still runs, and runs ship once; the run succeeds on b. slow outlives ship's end beside it: each
    step holds its own cgroup."""
    b = in_process(service_settings(workdir, postgres_url, "replica-b"))
    notebooks = {"slow.ipynb": json.dumps(SLOW), "ship.ipynb": json.dumps(SHIP)}
    await b.versions.publish_workflow(ALICE, TEAM, "gated", yaml.safe_dump(GATED), notebooks)
    await b.deploy(ALICE, TEAM, "gated", {})
    asked_of_a = []

    async def recorded(spec, notebook, out_dir):
        asked_of_a.append(spec.step)

    monkeypatch.setattr(service.runs.execution.executor, "run", recorded)
    run_id = (await b.runs.run_now(ALICE, TEAM, "gated"))["id"]
    deadline = time.monotonic() + 60
    while _steps(b, run_id).get("review", (None,))[0] != "waiting":
        assert time.monotonic() < deadline, "the gate never opened"
        await asyncio.sleep(0.2)
    assert _steps(b, run_id)["slow"][0] == "running"

    service.runs.gates.decide(DAVE, run_id, "review", True, "go")
    await b.runs.wait_idle()

    steps = _steps(b, run_id)
    assert {name: status for name, (status, _, _) in steps.items()} == {
        "slow": "succeeded",
        "review": "approved",
        "ship": "succeeded",
    }
    assert steps["ship"][1] < steps["slow"][2]  # b saw the decision before slow ended
    assert (b.runs.runs_root / str(run_id) / "shared" / "shipped.txt").read_text() == "shipped\n"
    assert asked_of_a == []
    with b.sessions() as db:
        assert (db.get(Run, run_id).status, db.get(Run, run_id).replica) == ("succeeded", "replica-b")


def _steps(pipelines, run_id: int) -> dict[str, tuple]:
    """step -> (status, started_at, finished_at)"""
    with pipelines.sessions() as db:
        return {r.step: (r.status, r.started_at, r.finished_at) for r in db.get(Run, run_id).steps}
