"""Pipelines on a real Kubernetes: published from a server pod, each run a batch/v1 Job.

The chart's pipelines Deployment (its ServiceAccount and Role, PostgreSQL) is the service;
alice (data-team) publishes from her pyspark server with the server's own token, as the
JupyterLab extension does; every run is a Job whose pod comes from the profile's pod
builder, and its log and output notebook come back to the run's pages.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from chart_install import APPROVERS
from hubclient import HubUser
from kernels import run_code
from notebooks import make_notebook
from workflow_runs import api, publish_workflow, start_run, steps_of, wait_run

PIPELINE = "data-team/cluster-report"


def notebook(*sources: str) -> dict:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(sources[0], metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(source) for source in sources[1:]]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return json.loads(nbformat.writes(nb))


GOOD = notebook("n = 3", "print('rows', n * 7)")
FAILING = notebook("n = 3", "print('before')", "raise ValueError('bad input')")

PUBLISH_FROM_THE_SERVER = """
import json, os, urllib.request
body = json.dumps({"notebook": json.loads(%r), "profile": "tensorflow", "message": "from my server"}).encode()
request = urllib.request.Request(
    os.environ["ANALYSIS_HUB_PIPELINES_URL"] + "api/pipelines/%s/versions", data=body, method="POST",
    headers={"Authorization": "token " + os.environ["JUPYTERHUB_API_TOKEN"],
             "Content-Type": "application/json"},
)
print(urllib.request.urlopen(request, timeout=60).status)
"""


@pytest.fixture(scope="module")
def alice(chart):
    user = HubUser(chart.url, "alice", "alice-password")
    yield user
    user.api.delete(user.url("/users/alice/server"))


def run_and_wait(chart, user) -> dict:
    return wait_run(chart, user, start_run(chart, user, PIPELINE))


def job_of(chart, run_id: int) -> dict:
    jobs = chart.cluster.get("jobs", "-n", chart.namespace)["items"]
    [job] = [j for j in jobs if j["metadata"]["labels"].get("analysis-hub/run") == str(run_id)]
    return job


def test_published_from_a_server_pod_run_as_a_job_then_a_failure_and_a_rollback(chart, alice):
    """alice publishes from her pyspark server with its own token (git in the hub image), deploys
    and runs it: the run is a Job with the step's retries and deadline, its pod from the
    tensorflow profile's builder (limits, image, run label), and the output notebook and log come
    back. v2 fails at its error cell, with the partial output; a rollback to v1 runs green again."""
    started = alice.start({"profile": "pyspark"})
    assert started.status_code in (201, 202), started.text
    alice.wait_ready(timeout=600)
    published = run_code(alice, PUBLISH_FROM_THE_SERVER % (json.dumps(GOOD), PIPELINE), timeout=120)
    assert published.strip() == "201", published
    deployed = api(chart, alice, "PUT", f"pipelines/{PIPELINE}/deployment", json={"timeout": 900})
    assert deployed.status_code == 200, deployed.text

    run = run_and_wait(chart, alice)
    assert run["status"] == "succeeded", run
    job = job_of(chart, run["id"])
    assert job["spec"]["activeDeadlineSeconds"] == 900
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == chart.tags["tensorflow"]
    assert container["resources"]["limits"]["memory"] in ("6Gi", str(6 * 2**30))
    assert job["spec"]["template"]["metadata"]["labels"]["analysis-hub/pipeline-run"] == "true"
    output = api(chart, alice, "GET", f"runs/{run['id']}/output").text
    assert "rows 21" in output
    assert "rows 21" in api(chart, alice, "GET", f"runs/{run['id']}/log").text

    published = api(
        chart,
        alice,
        "POST",
        f"pipelines/{PIPELINE}/versions",
        json={"notebook": FAILING, "profile": "tensorflow"},
    )
    assert published.status_code == 201, published.text
    assert (
        api(chart, alice, "PUT", f"pipelines/{PIPELINE}/deployment", json={"version": 2}).status_code == 200
    )
    failed = run_and_wait(chart, alice)
    assert (failed["status"], failed["version"]) == ("failed", 2), failed
    assert "bad input" in failed["reason"] and failed["error_cell"] is not None, failed
    assert "before" in api(chart, alice, "GET", f"runs/{failed['id']}/output").text

    assert api(chart, alice, "POST", f"pipelines/{PIPELINE}/rollback", json={"to": 1}).status_code == 200
    again = run_and_wait(chart, alice)
    assert (again["status"], again["version"]) == ("succeeded", 1), again


WORKFLOW = "data-team/cluster-flow"
PREPARE = make_notebook(
    "import os\n"
    "from analysis_hub_outputs import record\n"
    "folder = os.environ['ANALYSIS_HUB_RUN_FOLDER']\n"
    "open(os.path.join(folder, 'rows.txt'), 'w').write(str(rows))\n"
    "record('rows', rows)",
    parameters="rows = 12",
)
CHECK = make_notebook(
    "import os\n"
    "folder = os.environ['ANALYSIS_HUB_RUN_FOLDER']\n"
    "if not os.path.exists(os.path.join(folder, 'go')):\n"
    "    raise RuntimeError('no go file yet')\n"
    "import tensorflow as tf\n"
    "print('total', int(tf.constant(int(open(os.path.join(folder, 'rows.txt')).read())) * factor))",
    parameters="factor = 2",
)


def run_folder_path(chart, run_id: int) -> Path:
    """Where the tests' provisioner keeps a run's folder claim (a hostPath under the cluster)."""
    [claim] = chart.cluster.get("pvc", "-n", chart.namespace, "-l", f"analysis-hub/run={run_id}")["items"]
    return chart.cluster.root / "volumes" / claim["spec"]["volumeName"]


def test_a_workflow_across_images_waits_at_its_gate_without_a_pod_then_fails_and_is_repaired(chart, alice):
    """A pyspark step writes to the run's folder claim; the run waits at an approval gate with no
    step pod running; bob (ml-leads, outside the team) approves; the tensorflow step mounts the
    same claim, reads the first step's file, and fails for want of a flag file. Once the flag is
    in the failed run's folder, a repair (its claim a copy of that one) reuses the pyspark step
    and runs the tensorflow step to success."""
    bob = HubUser(chart.url, "bob", "bob-password")
    spec = {
        "steps": [
            {"name": "prepare", "notebook": "prepare.ipynb", "profile": "pyspark"},
            {"name": "review", "kind": "approval", "approvers": APPROVERS, "depends_on": ["prepare"]},
            {"name": "check", "notebook": "check.ipynb", "profile": "tensorflow", "depends_on": ["review"]},
        ]
    }
    publish_workflow(chart, alice, WORKFLOW, spec, {"prepare.ipynb": PREPARE, "check.ipynb": CHECK})
    run_id = start_run(chart, alice, WORKFLOW)

    waiting = wait_run(chart, alice, run_id, until=lambda r: r["finished"] or r["status"] == "waiting")
    assert waiting["status"] == "waiting", waiting
    live = [
        p for p in chart.pods(f"analysis-hub/run={run_id}") if p["status"]["phase"] in ("Pending", "Running")
    ]
    assert live == [], "no step pod runs at the gate"
    decided = api(chart, bob, "POST", f"runs/{run_id}/steps/review/approve", json={"comment": "fine"})
    assert decided.status_code == 200, decided.text
    failed = wait_run(chart, alice, run_id)
    steps = steps_of(failed)
    assert [steps[n]["status"] for n in ("prepare", "review", "check")] == ["succeeded", "approved", "failed"]
    assert "no go file yet" in failed["reason"], failed

    (run_folder_path(chart, run_id) / "go").write_text("go")
    repaired = api(chart, alice, "POST", f"runs/{run_id}/repair")
    assert repaired.status_code == 201, repaired.text
    run = wait_run(chart, alice, repaired.json()["id"])
    again = steps_of(run)
    assert run["status"] == "succeeded", run
    assert again["prepare"]["reused_from"] == run_id and again["check"]["reused_from"] is None
    assert "total 24" in api(chart, alice, "GET", f"runs/{run['id']}/steps/check/output").text
