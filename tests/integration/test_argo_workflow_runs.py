"""A gated workflow run by the pipelines service on the kubernetes backend, against stand-ins.

No cluster can run here (see test_argo_executor.py): the Kubernetes API with Argo's resources
and the controller are stand-ins (tests/argo_standin.py; a claim's volume is a folder), and so
is S3 (moto's server). What is real: the pipelines service (publishing, deploying, executing the
steps in order, the approval gate, the audit) on SQLite, the Argo executor with its Kubernetes
client, and each step's pod command: papermill running the step's notebook with a real kernel,
through papermill's own S3 handler, recording outputs with `analysis_hub_outputs`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
import yaml
from analysis_hub.backends.kubernetes.workflows import run_folder_claim_name
from analysis_hub.catalog_source import CatalogSource
from analysis_hub.pipelines.access import Caller, Forbidden
from analysis_hub.pipelines.models import AuditEvent, Run, open_database
from analysis_hub.pipelines.service import Pipelines, PipelinesConfig
from argo_cluster import IMAGE_REFS
from harness import REPO
from notebooks import make_notebook

pytestmark = pytest.mark.integration
pytest_plugins = ["argo_cluster"]  # the fixtures s3, cluster and executor

ALICE = Caller("alice", frozenset({"data-team"}))
DAVE = Caller("dave", frozenset({"data-team", "ml-leads"}))
PREPARE = make_notebook(
    "import os\nfrom analysis_hub_outputs import record",
    "folder = os.environ['ANALYSIS_HUB_RUN_FOLDER']\n"
    "open(f'{folder}/rows.csv', 'w').write('x\\n1\\n2\\n3\\n')\n"
    "record('rows', 3)",
    parameters="rows = 0",
)
TRAIN = make_notebook(
    "import os\nfrom analysis_hub_outputs import record",
    "rows = open(os.environ['ANALYSIS_HUB_RUN_FOLDER'] + '/rows.csv').read().split()[1:]\n"
    "print(f'read {len(rows)} rows; prepare recorded {prepare_rows}')\n"
    "record('accuracy', 0.9)",
    parameters="prepare_rows = 0",
)
SPEC = {
    "steps": [
        {"name": "prepare", "notebook": "prepare.ipynb", "profile": "pyspark"},
        {"name": "review", "kind": "approval", "approvers": "ml-leads", "depends_on": ["prepare"]},
        {
            "name": "train",
            "notebook": "train.ipynb",
            "profile": "tensorflow",
            "depends_on": ["review"],
            "when": "prepare.rows > 0",
        },
    ]
}


@pytest.fixture
async def controller(cluster):
    """Argo's controller: every Workflow created runs its pod."""
    api, argo, _ = cluster
    pods: list[asyncio.Task] = []

    async def play():
        while True:
            pods.append(asyncio.ensure_future(argo.run_pod(await api.created.get())))

    playing = asyncio.ensure_future(play())
    yield
    for task in [playing, *pods]:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(playing, *pods, return_exceptions=True)


async def test_a_gated_workflow_runs_step_by_step_as_workflows_sharing_the_runs_folder(
    cluster, executor, controller, tmp_path
):
    """Deploying stores one template per notebook step. The run's pyspark step writes a file to
    the run folder and records `rows`; the run then waits at the gate with no Workflow running and
    none yet for train, holding only the folder's claim. A non-approver gets 403; the approver's
    decision resumes the run: train runs as a Workflow of its own step template in the tensorflow
    image, mounts the same claim, reads the file and gets `prepare_rows`. The run succeeds step by
    step, the decision is audited, and the claim is deleted once the run has succeeded."""
    api, argo, _ = cluster
    pipelines = Pipelines(
        sessions=open_database(f"sqlite:///{tmp_path / 'pipelines.sqlite'}"),
        config=PipelinesConfig(
            data_dir=tmp_path, public_url="http://hub.example.com/", max_notebook_bytes=2**20
        ),
        catalog=CatalogSource(REPO / "profiles", REPO / "images"),
        executor=executor,
    )
    notebooks = {"prepare.ipynb": json.dumps(PREPARE), "train.ipynb": json.dumps(TRAIN)}
    await pipelines.versions.publish_workflow(ALICE, "data-team", "nightly", yaml.safe_dump(SPEC), notebooks)
    await pipelines.deploy(ALICE, "data-team", "nightly", {})
    for step in ("prepare", "train"):
        template = api.objects[("workflowtemplates", f"data-team-nightly-v1-{step}")]
        mounts = template["spec"]["templates"][0]["container"]["volumeMounts"]
        assert {"name": "run-folder", "mountPath": "/home/jovyan/run-folder"} in mounts

    run_id = (await pipelines.runs.run_now(ALICE, "data-team", "nightly"))["id"]
    for _ in range(600):
        if _run(pipelines, run_id).status == "waiting":
            break
        await asyncio.sleep(0.2)
    assert _steps(pipelines, run_id) == {"prepare": "succeeded", "review": "waiting", "train": "pending"}
    workflows = [o for (kind, _), o in api.objects.items() if kind == "workflows"]
    assert [w["metadata"]["labels"]["analysis-hub/pipeline"] for w in workflows] == ["nightly"]
    assert workflows[0]["status"]["phase"] == "Succeeded"  # nothing is left running at the gate
    claim = run_folder_claim_name("data-team", "nightly", run_id)
    assert (api.claim_folder(claim) / "rows.csv").read_text() == "x\n1\n2\n3\n"

    with pytest.raises(Forbidden):
        pipelines.runs.gates.decide(ALICE, run_id, "review", True)
    pipelines.runs.gates.decide(DAVE, run_id, "review", True, "rows look right")
    await pipelines.runs.wait_idle()

    assert _run(pipelines, run_id).status == "succeeded"
    assert _steps(pipelines, run_id) == {"prepare": "succeeded", "review": "approved", "train": "succeeded"}
    log = (tmp_path / "runs" / str(run_id) / "steps" / "train" / "log.txt").read_text()
    assert "read 3 rows; prepare recorded 3" in log
    train = next(n for (kind, n) in api.objects if kind == "workflows" and "-train-" in n)
    pod = argo.pod_of(train)
    assert pod["spec"]["containers"][0]["image"] == IMAGE_REFS["tensorflow"]
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "run-folder")
    assert volume["persistentVolumeClaim"] == {"claimName": claim}
    assert api.claim_folder(claim) is None  # deleted: a succeeded run has nothing to repair
    with pipelines.sessions() as db:
        decided = db.query(AuditEvent).filter_by(pipeline="nightly", action="approve").one()
        assert (decided.actor, decided.after["comment"]) == ("dave", "rows look right")


def _run(pipelines: Pipelines, run_id: int) -> Run:
    with pipelines.sessions() as db:
        return db.get(Run, run_id)


def _steps(pipelines: Pipelines, run_id: int) -> dict:
    with pipelines.sessions() as db:
        rows = {r.step: r.status for r in db.get(Run, run_id).steps}
    return {name: rows[name] for name in ("prepare", "review", "train")}
