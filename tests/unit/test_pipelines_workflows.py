"""Running a workflow (pipelines.execution, steps, runs.repair): steps in dependency order, each in
its own profile's image, outputs passed downstream as papermill parameters and to conditions,
skips with their reasons, per-step records, and repair from the failed step. The executor is a
scripted stand-in (pipelines_support.ScriptedExecutor); real papermill runs are integration tests."""

from __future__ import annotations

import asyncio

import pytest
from analysis_hub.pipelines.access import Conflict, Forbidden
from analysis_hub.pipelines.publishing.specs import RUN_FOLDER_ENV
from notebooks import make_notebook
from pipelines_support import ALICE, BOB, FAILED, SUCCEEDED, ScriptedExecutor, make_service, published
from workflow_support import (
    DAVE,
    NOTEBOOKS,
    PREPARE,
    PUBLISH,
    REVIEW,
    TRAIN,
    audit_actions,
    published_workflow,
    run_row,
    step_rows,
)

RECORDS = {"prepare": {"rows": 5}, "train": {"accuracy": 0.9}}


async def run_once(pipelines, name: str = "flow") -> int:
    started = await pipelines.runs.run_now(ALICE, "data-team", name)
    await pipelines.runs.wait_idle()
    return started["id"]


def specs_by_step(executor: ScriptedExecutor, run_id: int) -> dict:
    return {spec.step: spec for spec, _ in executor.runs if spec.run_id == run_id}


async def test_three_steps_run_in_order_each_in_its_profile_with_upstream_outputs(tmp_path):
    """prepare (pyspark) → train (tensorflow, when prepare.rows > 0) → publish (pytorch on CPU, when
    train.accuracy >= 0.5): the executor gets each step in order with its own profile, image and
    limits, the spec's parameter values, the upstream outputs its notebook declares
    (`prepare_rows`, `train_accuracy`), and the run's one shared folder (the deployment prepared
    each step first); each step's status,
    attempts, times, outputs and files are recorded, and the run succeeds."""
    scripted = ScriptedExecutor(outputs=RECORDS)
    pipelines = make_service(tmp_path, scripted)
    await published_workflow(pipelines, ALICE, deploy={})
    assert [(s.run_id, s.step, s.profile.profile.slug) for s in scripted.prepared] == [
        (0, "prepare", "pyspark"),
        (0, "train", "tensorflow"),
        (0, "publish", "pytorch"),
    ]
    run_id = await run_once(pipelines)
    assert [spec.step for spec, _ in scripted.runs] == ["prepare", "train", "publish"]
    specs = specs_by_step(scripted, run_id)
    # Each step holds its own cgroup and GPUs: steps that execute at once never share or free them.
    assert [s.holder("-") for s in specs.values()] == [
        f"run-{run_id}-{n}" for n in ("prepare", "train", "publish")
    ]
    assert {n: s.profile.profile.slug for n, s in specs.items()} == {
        "prepare": "pyspark",
        "train": "tensorflow",
        "publish": "pytorch",
    }
    assert len({s.image for s in specs.values()}) == 3 and all(
        s.profile.resources.gpus == 0 for s in specs.values()
    )
    memory = [specs[step].profile.resources.memory_limit for step in ("prepare", "train")]
    assert memory == [4 * 2**30, 6 * 2**30]
    assert specs["prepare"].parameters == {"rows": 1000}
    assert specs["train"].parameters == {"epochs": 1, "prepare_rows": 5}
    assert specs["publish"].parameters == {"train_accuracy": 0.9}
    assert "record('rows', rows)" in dict((s.step, nb) for s, nb in scripted.runs)["prepare"]
    shared = pipelines.runs.runs_root / str(run_id) / "shared"
    assert {s.run_folder for s in specs.values()} == {shared}
    assert {s.env[RUN_FOLDER_ENV] for s in specs.values()} == {str(shared)}
    assert specs["train"].env["TF_CPP_MIN_LOG_LEVEL"] == "2"  # the tensorflow profile's env
    rows = step_rows(pipelines, run_id)
    assert {n: (r.status, r.attempts, r.outputs) for n, r in rows.items()} == {
        "prepare": ("succeeded", 1, {"rows": 5}),
        "train": ("succeeded", 1, {"accuracy": 0.9}),
        "publish": ("succeeded", 1, {}),
    }
    assert rows["prepare"].finished_at <= rows["train"].started_at
    assert rows["train"].finished_at <= rows["publish"].started_at
    for step in rows:
        folder = pipelines.runs.runs_root / str(run_id) / "steps" / step
        assert sorted(p.name for p in folder.iterdir()) == ["log.txt", "output.html", "output.ipynb"]
    assert run_row(pipelines, run_id).status == "succeeded"


async def test_a_condition_that_does_not_hold_skips_with_its_reason(tmp_path):
    """prepare records rows 0: train is skipped, saying the condition and the value seen, and
    publish is skipped after it; neither reaches the executor; skipping is not a failure."""
    scripted = ScriptedExecutor(outputs={"prepare": {"rows": 0}})
    pipelines = make_service(tmp_path, scripted)
    await published_workflow(pipelines, ALICE, deploy={})
    run_id = await run_once(pipelines)
    assert [spec.step for spec, _ in scripted.runs] == ["prepare"]
    rows = step_rows(pipelines, run_id)
    assert {n: (r.status, r.reason) for n, r in rows.items()} == {
        "prepare": ("succeeded", ""),
        "train": ("skipped", "skipped: 'prepare.rows > 0' does not hold (prepare.rows is 0)"),
        "publish": ("skipped", "skipped: train skipped"),
    }
    assert (run_row(pipelines, run_id).status, run_row(pipelines, run_id).reason) == ("succeeded", "")


async def failed_run(tmp_path):
    """The three-step workflow whose train step fails once (and succeeds when run again)."""
    scripted = ScriptedExecutor(outputs=RECORDS, steps={"train": [FAILED, SUCCEEDED]})
    pipelines = make_service(tmp_path, scripted)
    await published_workflow(pipelines, ALICE, deploy={})
    return pipelines, scripted, await run_once(pipelines)


async def test_a_failed_step_skips_what_follows_with_the_reason_and_fails_the_run(tmp_path):
    """train fails: publish is skipped because train failed and never runs; the run is failed
    at train with the step's error; prepare's outputs stay recorded."""
    pipelines, scripted, run_id = await failed_run(tmp_path)
    assert [spec.step for spec, _ in scripted.runs] == ["prepare", "train"]
    rows = step_rows(pipelines, run_id)
    assert (rows["train"].status, rows["train"].exit_code, rows["train"].error_cell) == ("failed", 1, 2)
    assert (rows["publish"].status, rows["publish"].reason) == ("skipped", "skipped: train failed")
    assert rows["prepare"].outputs == {"rows": 5}
    run = run_row(pipelines, run_id)
    assert (run.status, run.reason) == ("failed", "step train failed: ZeroDivisionError: division by zero")


async def test_repair_reruns_the_failed_step_and_its_dependants_but_not_what_succeeded(tmp_path):
    """Repairing the failed run makes a new run linked by `repair_of` that executes train and then
    publish, never prepare: prepare's row is kept with its outputs, attempts and timestamps,
    `reused_from` the failed run, its output reaches train again as `prepare_rows`, and the
    shared folder's data comes along; the repair is audited and the new run succeeds."""
    pipelines, scripted, failed_id = await failed_run(tmp_path)
    old = step_rows(pipelines, failed_id)
    data = pipelines.runs.runs_root / str(failed_id) / "shared" / "rows.parquet"
    data.parent.mkdir(parents=True)
    data.write_text("what prepare wrote")
    before = len(scripted.runs)
    repaired = await pipelines.runs.repair(ALICE, failed_id)
    await pipelines.runs.wait_idle()
    assert (repaired["trigger"], repaired["started_by"]) == ("repair", "alice")
    assert [spec.step for spec, _ in scripted.runs[before:]] == ["train", "publish"]
    assert [spec.step for spec, _ in scripted.runs].count("prepare") == 1
    specs = specs_by_step(scripted, repaired["id"])
    assert specs["train"].parameters == {"epochs": 1, "prepare_rows": 5}
    assert (specs["train"].run_folder / "rows.parquet").read_text() == "what prepare wrote"
    run, rows = run_row(pipelines, repaired["id"]), step_rows(pipelines, repaired["id"])
    assert (run.status, run.repair_of) == ("succeeded", failed_id)
    kept = rows["prepare"]
    assert (kept.status, kept.reused_from, kept.outputs, kept.attempts) == (
        "succeeded",
        failed_id,
        {"rows": 5},
        1,
    )
    assert (kept.started_at, kept.finished_at) == (old["prepare"].started_at, old["prepare"].finished_at)
    assert kept.reason == f"kept from run {failed_id}"
    assert (rows["train"].status, rows["train"].reused_from) == ("succeeded", None)
    assert rows["train"].started_at > old["prepare"].finished_at
    assert rows["publish"].status == "succeeded"
    assert ("alice", "repair") in audit_actions(pipelines)
    # An executor that keeps run folders itself (Kubernetes) is told whose folder to copy, and when
    # each run ended, with its status.
    assert {specs[s].run_folder_copy_of for s in ("train", "publish")} == {failed_id}
    assert scripted.ended == [(failed_id, "failed"), (repaired["id"], "succeeded")]


async def test_a_repair_of_a_repair_reuses_from_the_run_that_ran_the_step(tmp_path):
    """A step kept twice still names the run where it actually ran, so its files are found."""
    scripted = ScriptedExecutor(outputs=RECORDS, steps={"train": [FAILED, FAILED, SUCCEEDED]})
    pipelines = make_service(tmp_path, scripted)
    await published_workflow(pipelines, ALICE, deploy={})
    first = await run_once(pipelines)
    second = (await pipelines.runs.repair(ALICE, first))["id"]
    await pipelines.runs.wait_idle()
    assert run_row(pipelines, second).status == "failed"
    third = (await pipelines.runs.repair(ALICE, second))["id"]
    await pipelines.runs.wait_idle()
    assert step_rows(pipelines, third)["prepare"].reused_from == first
    assert [spec.step for spec, _ in scripted.runs] == ["prepare", "train", "train", "train", "publish"]


async def test_only_a_run_that_did_not_succeed_can_be_repaired(tmp_path):
    """Repairing a succeeded run is a Conflict (409) saying which runs can be repaired, and
    nothing is started; a running one too; another team's run is Forbidden."""
    scripted = ScriptedExecutor(outputs=RECORDS)
    pipelines = make_service(tmp_path, scripted)
    await published_workflow(pipelines, ALICE, deploy={})
    run_id = await run_once(pipelines)
    with pytest.raises(Conflict, match="is succeeded; only a run that failed, timed out, was cancelled or"):
        await pipelines.runs.repair(ALICE, run_id)
    with pytest.raises(Forbidden, match="belongs to another team's pipeline"):
        await pipelines.runs.repair(BOB, run_id)
    scripted.gate.clear()
    scripted.entered.clear()
    running = await pipelines.runs.run_now(ALICE, "data-team", "flow")
    await scripted.entered.wait()
    with pytest.raises(Conflict, match="is running"):
        await pipelines.runs.repair(ALICE, running["id"])
    scripted.gate.set()
    await pipelines.runs.wait_idle()
    assert len(pipelines.runs.history(ALICE, "data-team", "flow")) == 2


async def test_a_step_gets_only_its_own_upstream_outputs(tmp_path):
    """A step declaring a parameter named like another branch's output (`side_rows`) keeps its
    default: only the outputs of the steps upstream of it are passed in. (The gate holds train
    back until the side branch has surely recorded its output.)"""
    steps = [
        PREPARE,
        {**PREPARE, "name": "side"},
        {**REVIEW, "depends_on": ["prepare"]},
        {**TRAIN, "depends_on": ["review"]},
    ]
    train = make_notebook(
        "record('accuracy', 0.9)", parameters="epochs = 1\nprepare_rows = 0\nside_rows = -1"
    )
    scripted = ScriptedExecutor(outputs={"prepare": {"rows": 5}, "side": {"rows": 7}})
    pipelines = make_service(tmp_path, scripted)
    await published_workflow(
        pipelines, ALICE, steps, deploy={}, notebooks={**NOTEBOOKS, "train.ipynb": train}
    )
    run_id = await run_once(pipelines)
    assert step_rows(pipelines, run_id)["side"].outputs == {"rows": 7}
    pipelines.runs.gates.decide(DAVE, run_id, "review", True)
    await pipelines.runs.wait_idle()
    assert specs_by_step(scripted, run_id)["train"].parameters == {
        "epochs": 1,
        "prepare_rows": 5,
        "side_rows": -1,
    }


async def test_a_single_notebook_pipeline_runs_as_one_step_in_its_run_folder(tmp_path):
    """A single-notebook version is a one-step workflow: the executor gets no step name and no
    shared folder, the files stay in the run's own folder, and the run records the step's exit
    code, error cell and attempts as before workflows."""
    scripted = ScriptedExecutor(FAILED)
    pipelines = make_service(tmp_path, scripted)
    await published(pipelines, deploy={})
    run_id = await run_once(pipelines, "report")
    [(spec, _)] = scripted.runs
    assert (spec.step, spec.run_folder, spec.parameters) == (None, None, {"n": 3, "greeting": "hi"})
    assert spec.holder("/") == f"run/{run_id}"  # its cgroup and GPUs, named as before workflows
    run = run_row(pipelines, run_id)
    assert (run.status, run.reason, run.exit_code, run.error_cell, run.attempts) == (
        "failed",
        "ZeroDivisionError: division by zero",
        1,
        2,
        1,
    )
    assert sorted(p.name for p in (pipelines.runs.runs_root / str(run_id)).iterdir()) == [
        "log.txt",
        "output.html",
        "output.ipynb",
    ]
    assert [r.step for r in step_rows(pipelines, run_id).values()] == ["main"]


async def test_each_step_has_its_own_retries_and_timeout_else_the_deployments(tmp_path):
    """A step's `retries` and `timeout` apply to it, the deployment's to the steps without their
    own: prepare (deployment: 1 retry) succeeds on its 2nd attempt, train (retries: 2) on its
    3rd, publish (retries: 0) fails after one; each step's timeout reaches the executor in
    whole seconds, train's own 30m and the others within the deployment's 2 h."""
    scripted = ScriptedExecutor(
        outputs=RECORDS,
        steps={"prepare": [FAILED, SUCCEEDED], "train": [FAILED, FAILED, SUCCEEDED], "publish": [FAILED]},
    )
    pipelines = make_service(tmp_path, scripted)
    steps = [PREPARE, {**TRAIN, "retries": 2, "timeout": "30m"}, {**PUBLISH, "retries": 0}]
    await published_workflow(pipelines, ALICE, steps, deploy={"retries": 1, "timeout": 7200})
    run_id = await run_once(pipelines)
    rows = step_rows(pipelines, run_id)
    assert {n: (r.status, r.attempts) for n, r in rows.items()} == {
        "prepare": ("succeeded", 2),
        "train": ("succeeded", 3),
        "publish": ("failed", 1),
    }
    timeouts = {spec.step: spec.timeout for spec, _ in scripted.runs}
    assert all(isinstance(t, int) for t in timeouts.values())
    assert timeouts["train"] == 1800 and 0 < timeouts["prepare"] <= 7200 and 0 < timeouts["publish"] <= 7200


async def test_run_and_deployment_parameters_reach_their_step_by_its_name(tmp_path):
    """A workflow's parameters are named `<step>.<name>`: the deployment's override beats the
    spec's value and a run's beats both, each reaching only its own step, typed as declared."""
    scripted = ScriptedExecutor(outputs=RECORDS)
    pipelines = make_service(tmp_path, scripted)
    await published_workflow(pipelines, ALICE, deploy={"parameters": {"prepare.rows": 50, "train.epochs": 2}})
    started = await pipelines.runs.run_now(ALICE, "data-team", "flow", {"train.epochs": "4"})
    await pipelines.runs.wait_idle()
    specs = specs_by_step(scripted, started["id"])
    assert specs["prepare"].parameters == {"rows": 50}
    assert specs["train"].parameters == {"epochs": 4, "prepare_rows": 5}


async def test_cancelling_a_workflow_stops_its_step_and_cancels_what_is_left(tmp_path):
    """Cancelled while prepare is in the executor: prepare and the steps not yet run are recorded
    `cancelled`, nothing more reaches the executor, and the late outcome doesn't overwrite it;
    a repair then runs it all again."""
    scripted = ScriptedExecutor(outputs=RECORDS)
    scripted.gate.clear()
    pipelines = make_service(tmp_path, scripted)
    await published_workflow(pipelines, ALICE, deploy={})
    run_id = (await pipelines.runs.run_now(ALICE, "data-team", "flow"))["id"]
    await scripted.entered.wait()
    await pipelines.runs.cancel(ALICE, run_id)
    scripted.gate.set()
    await pipelines.runs.wait_idle()
    assert {n: r.status for n, r in step_rows(pipelines, run_id).items()} == {
        "prepare": "cancelled",
        "train": "cancelled",
        "publish": "cancelled",
    }
    assert run_row(pipelines, run_id).status == "cancelled" and len(scripted.runs) == 1
    assert scripted.ended == [(run_id, "cancelled")]  # told once, by the cancel
    repaired = await pipelines.runs.repair(ALICE, run_id)
    await pipelines.runs.wait_idle()
    assert [spec.step for spec, _ in scripted.runs[1:]] == ["prepare", "train", "publish"]
    assert run_row(pipelines, repaired["id"]).status == "succeeded"


async def test_a_failed_single_notebook_run_can_be_repaired(tmp_path):
    """A single-notebook run is one step: its repair runs the notebook again, linked to the
    failed run, with the same parameters."""
    scripted = ScriptedExecutor(FAILED, SUCCEEDED)
    pipelines = make_service(tmp_path, scripted)
    await published(pipelines, deploy={})
    started = await pipelines.runs.run_now(ALICE, "data-team", "report", {"n": 5})
    await pipelines.runs.wait_idle()
    repaired = await pipelines.runs.repair(ALICE, started["id"])
    await pipelines.runs.wait_idle()
    [view] = [r for r in pipelines.runs.history(ALICE, "data-team", "report") if r["id"] == repaired["id"]]
    assert (view["status"], view["repair_of"], view["parameters"]) == (
        "succeeded",
        started["id"],
        {"n": 5, "greeting": "hi"},
    )
    assert [spec.parameters for spec, _ in scripted.runs] == [{"n": 5, "greeting": "hi"}] * 2


async def test_a_rollback_runs_the_earlier_versions_steps(tmp_path):
    """v1 is the three-step workflow, v2 only prepare: deployed at v2 a run has one step; rolled
    back to v1 the next run executes v1's three steps, each as v1 published it."""
    scripted = ScriptedExecutor(outputs=RECORDS)
    pipelines = make_service(tmp_path, scripted)
    await published_workflow(pipelines, ALICE)
    await published_workflow(pipelines, ALICE, steps=[{**PREPARE, "parameters": {"rows": 7}}], deploy={})
    first = await run_once(pipelines)
    assert [(s.step, s.version, s.parameters) for s, _ in scripted.runs] == [("prepare", 2, {"rows": 7})]
    await pipelines.rollback(ALICE, "data-team", "flow", 1)
    second = await run_once(pipelines)
    assert [(s.step, s.version) for s, _ in scripted.runs[1:]] == [
        ("prepare", 1),
        ("train", 1),
        ("publish", 1),
    ]
    assert specs_by_step(scripted, second)["prepare"].parameters == {"rows": 1000}
    assert list(step_rows(pipelines, first)) == ["prepare"]


async def test_the_runs_timeout_counts_across_its_steps(tmp_path):
    """With a deployment timeout of 1 s, a first step that kept the run busy past it leaves no
    time for the next: train is recorded timed out without reaching the executor, publish is
    skipped, and the run fails at train saying the run's timeout was reached."""
    scripted = ScriptedExecutor(outputs=RECORDS)
    scripted.gate.clear()
    pipelines = make_service(tmp_path, scripted)
    await published_workflow(pipelines, ALICE, deploy={"timeout": 1})
    run_id = (await pipelines.runs.run_now(ALICE, "data-team", "flow"))["id"]
    await scripted.entered.wait()
    await asyncio.sleep(1.2)  # prepare "runs" past the run's timeout (the scripted one ignores it)
    scripted.gate.set()
    await pipelines.runs.wait_idle()
    assert [spec.step for spec, _ in scripted.runs] == ["prepare"]
    rows = step_rows(pipelines, run_id)
    assert (rows["train"].status, rows["publish"].status) == ("timed_out", "skipped")
    run = run_row(pipelines, run_id)
    assert (run.status, run.reason) == (
        "failed",
        "step train timed_out: the run's timeout of 1 s was reached",
    )
