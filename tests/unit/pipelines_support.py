"""What the pipelines unit tests share: a service on SQLite in a temporary folder, callers, a
scripted executor. No hub, no papermill."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import nbformat
import pytest
from analysis_hub.catalog_source import CatalogSource
from analysis_hub.pipelines.access import Caller
from analysis_hub.pipelines.engine.executor import HTML, LOG, OUTPUT, Executor, RunOutcome
from analysis_hub.pipelines.publishing.notebooks import OUTPUT_MEDIA_TYPE
from analysis_hub.pipelines.publishing.specs import RunSpec
from analysis_hub.pipelines.service import Pipelines, PipelinesConfig
from analysis_hub.pipelines.store.models import open_database
from notebooks import make_notebook
from unit_support import IMAGES, PROFILES

ALICE = Caller("alice", frozenset({"data-team"}))
CAROL = Caller("carol", frozenset({"data-team", "gpu-team"}))
BOB = Caller("bob", frozenset({"gpu-team"}))
ADMIN = Caller("admin", frozenset(), admin=True)

REPORT = make_notebook("print(greeting * n)")
SUCCEEDED = RunOutcome("succeeded", 0)
FAILED = RunOutcome("failed", 1, "ZeroDivisionError: division by zero", error_cell=2)


class ScriptedExecutor(Executor):
    """A stand-in executor for unit tests: it writes the files every executor leaves in a run's
    folder and returns the outcomes it is given, one per attempt (the last one repeats). While
    `gate` is closed, runs wait at it, so a test can hold a run "running" (`entered` tells when
    one got there). For a workflow's steps, `steps` gives a step its own outcomes (keyed by
    `spec.step`, used up the same way) and `outputs` the values it records, left in its output
    notebook as `analysis_hub_outputs.record` leaves them. `ended` lists the runs the service
    said had ended (`end_run`), with their status. The real executors
    (papermill in the local sandbox, in a container) are covered by the integration tests."""

    def __init__(
        self,
        *outcomes: RunOutcome,
        steps: dict[str, list[RunOutcome]] | None = None,
        outputs: dict[str, dict] | None = None,
    ):
        self.outcomes = list(outcomes or [SUCCEEDED])
        self.steps = {name: list(scripted) for name, scripted in (steps or {}).items()}
        self.outputs = dict(outputs or {})
        self.runs: list[tuple[RunSpec, str]] = []
        self.prepared: list[RunSpec] = []
        self.ended: list[tuple[int, str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.entered = asyncio.Event()  # set when a run reached the executor

    async def run(self, spec: RunSpec, notebook: str, out_dir: Path) -> RunOutcome:
        self.runs.append((spec, notebook))
        self.entered.set()
        await self.gate.wait()
        outcomes = self.steps.get(spec.step, self.outcomes)
        outcome = outcomes.pop(0) if len(outcomes) > 1 else outcomes[0]
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / OUTPUT).write_text(recording(notebook, self.outputs.get(spec.step, {})))
        (out_dir / HTML).write_text(f"<p>{outcome.status}</p>")
        (out_dir / LOG).write_text(f"attempt {len(self.runs)}: {outcome.status} {outcome.reason}\n")
        return outcome

    async def prepare(self, spec: RunSpec) -> None:
        self.prepared.append(spec)

    async def end_run(self, run_id: int, status: str) -> None:
        self.ended.append((run_id, status))


def recording(notebook: str, values: dict) -> str:
    """The notebook with a last cell whose outputs record `values` (name -> JSON value)."""
    if not values:
        return notebook
    nb = nbformat.reads(notebook, as_version=4)
    cell = nbformat.v4.new_code_cell("\n".join(f"record({k!r}, {v!r})" for k, v in values.items()))
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={OUTPUT_MEDIA_TYPE: {"name": k, "value": v}})
        for k, v in values.items()
    ]
    nb.cells.append(cell)
    return nbformat.writes(nb)


def make_service(
    tmp_path: Path, executor: Executor, catalog_dir: Path = PROFILES, gpus: int = 0, replica: str = "local"
) -> Pipelines:
    tmp_path.mkdir(parents=True, exist_ok=True)
    return Pipelines(
        sessions=open_database(f"sqlite:///{tmp_path / 'pipelines.sqlite'}"),
        config=PipelinesConfig(
            data_dir=tmp_path,
            public_url="http://hub.example.com/",
            max_notebook_bytes=2**20,
            gpus_available=gpus,
            replica=replica,
        ),
        catalog=CatalogSource(catalog_dir, IMAGES),
        executor=executor,
    )


async def published(service: Pipelines, name: str = "report", deploy: dict | None = None, team="data-team"):
    """A pipeline with one version (alice's, pyspark), deployed with `deploy` unless it is None."""
    caller = ALICE if team == "data-team" else BOB
    await service.versions.publish(caller, team, name, json.dumps(REPORT), "pyspark")
    if deploy is not None:
        await service.deploy(caller, team, name, deploy)


@pytest.fixture
def executor() -> ScriptedExecutor:
    return ScriptedExecutor()


@pytest.fixture
async def service(tmp_path, executor):
    """A started service (recovered runs, running scheduler); at the end its runs are waited for."""
    running = make_service(tmp_path, executor)
    running.start()
    yield running
    executor.gate.set()
    await running.runs.wait_idle()
    running.schedules.stop()
