"""Workflows of notebooks, for real: steps across profiles, data between steps, repair, approval
gates.

One hub (`workflow_runs.start_workflows_hub`: `analysis-hub up`, so the
pipelines service is the hub's own, on the local backend) is shared by the
module. alice is in data-team, bob in gpu-team, carol in ml-leads (the
approver group), admin is an admin.
Every workflow is published over REST as `pipeline.yaml` with its notebooks,
and its steps run with real papermill in the real environments of their
images (the shared ones under ANALYSIS_HUB_TEST_ROOT/envs), as the team's
run user. Each test publishes its own pipeline, so the tests pass in any order.
Bad specs and chained pipelines are test_workflow_chains.py, the docker
variant test_workflows_docker.py; the helpers and notebooks are in
tests/workflow_runs.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import ENVS_DIR, make_workdir
from notebooks import make_notebook as notebook
from webhooks import receive_webhooks
from workflow_runs import (
    ACROSS_PROFILES,
    FIRST,
    PREPARE,
    REPORT,
    SECOND,
    SHIP,
    THIRD,
    TRAIN,
    api,
    injected,
    papermill_in,
    printed,
    processes_in,
    publish_workflow,
    run_folder,
    start_run,
    start_workflows_hub,
    step_output,
    steps_of,
    wait_run,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hub():
    running = start_workflows_hub()
    yield running
    running.stop()


@pytest.fixture
def webhooks():
    """A webhook receiver on loopback: (its URL, the JSON bodies it received)."""
    with receive_webhooks() as receiver:
        yield receiver


def test_three_steps_across_profiles_share_data_and_outputs(hub):
    """A pyspark step writes a Parquet dataset into the run folder and records its row count; a
    tensorflow step, run because `prepare.rows > 0`, gets `prepare_rows`, reads the data and trains
    one epoch, recording its loss; the pytorch report runs because the loss passes its threshold and
    the opposite branch is skipped with the reason. Each step ran in its own image's environment,
    within its own profile's memory limit, and each step's output notebook is served."""
    alice, p = hub.user("alice"), "data-team/across-profiles"
    notebooks = {"prepare.ipynb": PREPARE, "train.ipynb": TRAIN, "report.ipynb": REPORT}
    version = publish_workflow(hub, alice, p, ACROSS_PROFILES, notebooks)
    assert [(s["name"], s["image"]) for s in version["steps"]] == [
        ("prepare", "pyspark"),
        ("train", "tensorflow"),
        ("report", "pytorch"),
        ("retrain", "pytorch"),
    ]
    run = wait_run(hub, alice, start_run(hub, alice, p))
    steps = steps_of(run)
    assert run["status"] == "succeeded", (run["reason"], steps)
    assert {name: s["status"] for name, s in steps.items()} == {
        "prepare": "succeeded",
        "train": "succeeded",
        "report": "succeeded",
        "retrain": "skipped",
    }, run
    assert all(steps[n]["duration_s"] > 0 for n in ("prepare", "train", "report"))
    assert steps["retrain"]["duration_s"] is None and steps["retrain"]["started_at"] is None
    assert steps["prepare"]["outputs"] == {"rows": 40}
    assert steps["train"]["outputs"]["rows_read"] == 40
    loss = steps["train"]["outputs"]["loss"]
    assert 0 <= loss < 100
    assert steps["retrain"]["reason"] == f"skipped: 'train.loss >= 100' does not hold (train.loss is {loss})"
    folder = run_folder(hub, run["id"])
    assert steps["report"]["outputs"] == {"report": str(folder / "report.txt")}
    assert (folder / "report.txt").read_text() == f"40 rows, loss {loss}"
    assert (folder / "data.parquet" / "_SUCCESS").exists()
    assert list((folder / "data.parquet").glob("part-*.parquet"))

    outputs = {name: step_output(hub, alice, run["id"], name) for name in ("prepare", "train", "report")}
    assert "prepare_rows = 40" in injected(outputs["train"])
    assert "prepare_rows: 40" in printed(outputs["train"])
    assert "prepare_rows = 40" in injected(outputs["report"])
    assert f"train_loss = {loss}" in injected(outputs["report"])
    pythons = {
        name: next(line for line in printed(nb).splitlines() if line.startswith("python: "))[8:]
        for name, nb in outputs.items()
    }
    for name, image in (("prepare", "pyspark"), ("train", "tensorflow"), ("report", "pytorch")):
        env = Path(pythons[name]).parent.parent
        assert env.parent == ENVS_DIR and env.name.startswith(f"{image}-"), pythons
    # Each step in its own profile's limits: pyspark 4 GiB, tensorflow 6 GiB, pytorch on CPU 4 GiB.
    limits = {
        name: next(line for line in printed(nb).splitlines() if line.startswith("memory limit: "))[14:]
        for name, nb in outputs.items()
    }
    assert limits == {"prepare": str(4 * 2**30), "train": str(6 * 2**30), "report": str(4 * 2**30)}
    log = api(hub, alice, "GET", f"runs/{run['id']}/steps/train/log")
    assert log.status_code == 200
    missing = api(hub, alice, "GET", f"runs/{run['id']}/steps/retrain/output")
    assert missing.status_code == 404, "a skipped step ran nothing"
    # The run page links each step's output page (which frames its HTML), and no run-level
    # output a workflow doesn't have.
    page = alice.api.get(f"{hub.url}/services/pipelines/runs/{run['id']}").text
    for name in ("prepare", "train", "report"):
        assert f'runs/{run["id"]}/steps/{name}"' in page
        step_page = alice.api.get(f"{hub.url}/services/pipelines/runs/{run['id']}/steps/{name}").text
        assert f"runs/{run['id']}/steps/{name}/output.html" in step_page
    assert 'steps/retrain"' not in page
    assert f"api/runs/{run['id']}/output" not in page and "No output yet" not in page


def test_a_failed_step_skips_the_rest_and_repair_reruns_from_it_reusing_what_succeeded(hub):
    """Step 2 fails while a flag file the test controls is missing: step 3 is skipped with the
    reason and the run fails at step 2. Once the flag exists, a repair (a new run linked to the
    first) re-runs step 2 then step 3, and keeps step 1 as it was: its outputs, its timestamps,
    `reused_from` the first run, and its notebook didn't run again (the line it appends to a file
    in the run folder appears once in the repaired run's copy)."""
    alice, p = hub.user("alice"), "data-team/repairable"
    flags = make_workdir()  # 0755, readable by the team's run user
    flag = flags / "go"
    spec = {
        "steps": [
            {"name": "first", "notebook": "first.ipynb", "profile": "pyspark"},
            {
                "name": "second",
                "notebook": "second.ipynb",
                "profile": "pyspark",
                "depends_on": ["first"],
                "parameters": {"flag": str(flag)},
            },
            {"name": "third", "notebook": "third.ipynb", "profile": "pyspark", "depends_on": ["second"]},
        ]
    }
    notebooks = {"first.ipynb": FIRST, "second.ipynb": SECOND, "third.ipynb": THIRD}
    publish_workflow(hub, alice, p, spec, notebooks)
    failed = wait_run(hub, alice, start_run(hub, alice, p))
    steps = steps_of(failed)
    assert (failed["status"], [steps[n]["status"] for n in ("first", "second", "third")]) == (
        "failed",
        ["succeeded", "failed", "skipped"],
    ), failed
    assert steps["third"]["reason"] == "skipped: second failed"
    failed_cell = step_output(hub, alice, failed["id"], "second").cells[steps["second"]["error_cell"]]
    assert "raise RuntimeError" in failed_cell.source
    # The run page links the failed step's page, which frames its HTML at the error cell.
    html = f"runs/{failed['id']}/steps/second/output.html"
    run_page = f"{hub.url}/services/pipelines/runs/{failed['id']}"
    assert f'runs/{failed["id"]}/steps/second"' in alice.api.get(run_page).text
    assert f"{html}#papermill-error-cell" in alice.api.get(f"{run_page}/steps/second").text
    assert "#papermill-error-cell" not in alice.api.get(f"{run_page}/steps/first").text
    assert 'id="papermill-error-cell"' in alice.api.get(f"{hub.url}/services/pipelines/{html}").text
    assert failed["reason"].startswith("step second failed") and "no flag at" in failed["reason"], failed
    assert (run_folder(hub, failed["id"]) / "first-ran.txt").read_text() == "ran\n"

    flag.write_text("go")
    repaired = api(hub, alice, "POST", f"runs/{failed['id']}/repair")
    assert repaired.status_code == 201, repaired.text
    run = wait_run(hub, alice, repaired.json()["id"])
    assert (run["status"], run["repair_of"], run["trigger"]) == ("succeeded", failed["id"], "repair"), run
    again = steps_of(run)
    assert [again[n]["status"] for n in ("first", "second", "third")] == ["succeeded"] * 3
    kept = again["first"]
    assert kept["reused_from"] == failed["id"]
    assert kept["outputs"] == {"n": 7} == steps["first"]["outputs"]
    assert (kept["started_at"], kept["finished_at"], kept["attempts"]) == (
        steps["first"]["started_at"],
        steps["first"]["finished_at"],
        steps["first"]["attempts"],
    )
    assert again["second"]["reused_from"] is None and again["third"]["reused_from"] is None
    assert again["second"]["started_at"] > steps["second"]["finished_at"]
    assert again["second"]["outputs"] == {"doubled": 14} and again["third"]["outputs"] == {"total": 15}
    assert (run_folder(hub, run["id"]) / "first-ran.txt").read_text() == "ran\n", "step 1 ran once"
    assert "first_n = 7" in injected(step_output(hub, alice, run["id"], "second"))
    # The kept step's output notebook is the first run's, served through the repaired run.
    assert printed(step_output(hub, alice, run["id"], "first")) == printed(
        step_output(hub, alice, failed["id"], "first")
    )
    actions = [e["action"] for e in api(hub, alice, "GET", "audit?team=data-team&pipeline=repairable").json()]
    assert "repair" in actions


def test_a_run_waits_at_an_approval_gate_holding_no_process_until_an_approver_approves(hub, webhooks):
    """While the first step runs, its papermill process is seen in the run's folder as the team's
    run user; once the run reaches the gate it is `waiting` with no process left, and the deployment's
    webhook gets a message linking to the run's page; alice (team member, not an approver), admin
    and bob get 403; carol (ml-leads, outside the team) opens the linked page and approves with a
    comment, and the run goes on to the step after the gate and succeeds. The audit has the
    request and the decision."""
    webhook_url, received = webhooks
    alice, carol, admin, bob = (hub.user(name) for name in ("alice", "carol", "admin", "bob"))
    p = "data-team/gated"
    spec = {
        "steps": [
            {"name": "first", "notebook": "first.ipynb", "profile": "pyspark"},
            {"name": "review", "kind": "approval", "approvers": "ml-leads", "depends_on": ["first"]},
            {"name": "ship", "notebook": "ship.ipynb", "profile": "pyspark", "depends_on": ["review"]},
        ]
    }
    # The first step holds until the test lets it go: meanwhile its processes are seen where the
    # check below looks for them, so that check can tell a held process from none.
    release = make_workdir() / "go"
    first = notebook(
        "import os, time\n"
        "from analysis_hub_outputs import record\n"
        "while not os.path.exists(release):\n"
        "    time.sleep(0.2)\n"
        "record('n', 7)",
        parameters=f"release = {str(release)!r}",
    )
    notebooks = {"first.ipynb": first, "ship.ipynb": SHIP}
    publish_workflow(hub, alice, p, spec, notebooks, notify_url=webhook_url)
    run_id = start_run(hub, alice, p)
    run_dir = run_folder(hub, run_id).parent
    deadline = time.monotonic() + 300
    while not papermill_in(run_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    held = papermill_in(run_dir)
    assert [p["user"] for p in held] == ["pipelines-data-team"], held
    release.write_text("go")
    waiting = wait_run(hub, alice, run_id, until=lambda r: r["finished"] or r["status"] == "waiting")
    steps = steps_of(waiting)
    assert (waiting["status"], steps["first"]["status"], steps["review"]["status"]) == (
        "waiting",
        "succeeded",
        "waiting",
    ), waiting
    assert steps["review"]["approvers"] == "ml-leads" and steps["review"]["deadline"]
    assert "ship" not in steps or steps["ship"]["status"] == "pending"
    assert processes_in(run_dir) == [], "a run waiting at a gate holds no process"
    deadline = time.monotonic() + 10
    while not received and time.monotonic() < deadline:
        time.sleep(0.2)
    [asked] = received
    assert asked["analysis_hub"] == {
        "team": "data-team",
        "pipeline": "gated",
        "run": run_id,
        "step": "review",
        "url": f"{hub.url}/services/pipelines/runs/{run_id}",
    }
    assert "a member of ml-leads approves or rejects it" in asked["text"]
    # carol is outside data-team: as an approver of the run's gate she may see the run, not change it.
    page = carol.api.get(asked["analysis_hub"]["url"])
    assert page.status_code == 200 and 'id="approve-review"' in page.text, "the approver's page"
    assert 'id="approve-review"' not in alice.api.get(asked["analysis_hub"]["url"]).text
    assert api(hub, carol, "GET", f"runs/{run_id}").json()["status"] == "waiting"
    assert api(hub, carol, "POST", f"runs/{run_id}/cancel").status_code == 403
    assert api(hub, bob, "GET", f"runs/{run_id}").status_code == 403, "other users still see nothing"

    for refused in (alice, admin, bob):
        response = api(hub, refused, "POST", f"runs/{run_id}/steps/review/approve", json={"comment": "me"})
        assert response.status_code == 403, response.text
        assert "only members of ml-leads" in response.json()["message"]
    assert api(hub, alice, "GET", f"runs/{run_id}").json()["status"] == "waiting"

    decided = api(hub, carol, "POST", f"runs/{run_id}/steps/review/approve", json={"comment": "looks good"})
    assert decided.status_code == 200, decided.text
    run = wait_run(hub, alice, run_id)
    steps = steps_of(run)
    assert run["status"] == "succeeded", (run["reason"], steps)
    assert (steps["review"]["status"], steps["review"]["decided_by"], steps["review"]["comment"]) == (
        "approved",
        "carol",
        "looks good",
    )
    assert (steps["ship"]["status"], steps["ship"]["outputs"]) == ("succeeded", {"shipped": 7})
    again = api(hub, carol, "POST", f"runs/{run_id}/steps/review/reject", json={})
    assert again.status_code == 409, "a decided gate can't be decided again"

    events = api(hub, alice, "GET", "audit?team=data-team&pipeline=gated").json()
    gate_events = [
        (e["actor"], e["action"]) for e in events if e["action"] in ("approval-requested", "approve")
    ]
    assert gate_events == [("alice", "approval-requested"), ("carol", "approve")], events
    approve = next(e for e in events if e["action"] == "approve")
    assert approve["after"] == {
        "run": run_id,
        "step": "review",
        "decision": "approved",
        "comment": "looks good",
    }


def gated_spec(timeout: str | None = None) -> dict:
    review = {"name": "review", "kind": "approval", "approvers": "ml-leads", "depends_on": ["first"]}
    if timeout:
        review["timeout"] = timeout
    return {
        "steps": [
            {"name": "first", "notebook": "first.ipynb", "profile": "pyspark"},
            review,
            {"name": "ship", "notebook": "third.ipynb", "profile": "pyspark", "depends_on": ["review"]},
        ]
    }


def test_a_rejected_or_timed_out_gate_ends_the_run_rejected_and_skips_what_follows(hub):
    """carol rejects one run's gate with a comment; another run's gate has a 3 s timeout and nobody
    decides: both runs end `rejected` at the gate, the step after it is skipped with the reason and
    never runs, and the audit has each rejection with who (carol, or `timeout`) and the comment."""
    alice, carol = hub.user("alice"), hub.user("carol")
    notebooks = {"first.ipynb": FIRST, "third.ipynb": THIRD}
    publish_workflow(hub, alice, "data-team/refused", gated_spec(), notebooks)
    publish_workflow(hub, alice, "data-team/unanswered", gated_spec("3s"), notebooks)
    refused = start_run(hub, alice, "data-team/refused")
    unanswered = start_run(hub, alice, "data-team/unanswered")
    wait_run(hub, alice, refused, until=lambda r: r["finished"] or r["status"] == "waiting")
    decided = api(hub, carol, "POST", f"runs/{refused}/steps/review/reject", json={"comment": "not yet"})
    assert decided.status_code == 200, decided.text
    for run_id, actor, comment in ((refused, "carol", "not yet"), (unanswered, "timeout", "no decision")):
        run = wait_run(hub, alice, run_id)
        steps = steps_of(run)
        assert run["status"] == "rejected" and run["reason"].startswith("step review rejected"), run
        review, ship = steps["review"], steps["ship"]
        assert (review["status"], review["decided_by"]) == ("rejected", actor)
        assert review["comment"].startswith(comment), review
        assert (ship["status"], ship["reason"]) == ("skipped", "skipped: review rejected")
        assert ship["started_at"] is None and ship["outputs"] == {}
        missing = api(hub, alice, "GET", f"runs/{run_id}/steps/ship/output")
        assert missing.status_code == 404, "the step after a rejected gate ran nothing"
    for name, actor in (("refused", "carol"), ("unanswered", "timeout")):
        events = api(hub, alice, "GET", f"audit?team=data-team&pipeline={name}").json()
        gate = [(e["actor"], e["action"]) for e in events if e["action"] in ("approval-requested", "reject")]
        assert gate == [("alice", "approval-requested"), (actor, "reject")], events
