"""The kubernetes backend's pipeline executor: runs as Argo Workflows, against stand-ins for the cluster.

No Kubernetes cluster, so no Argo, can run here: the API server is a stand-in
(`argo_standin.StandInKubernetes`, the Argo resources' endpoints on
127.0.0.1, refusing what hera's models of Argo's schema don't accept), and
so is the controller (`StandInArgo`: it runs a Workflow's step as its pod
would, as a local process, and reports its phases; the other phases are
scripted). The artifact store is moto's S3 server, also a stand-in. What is
real: the executor and its Kubernetes client (kubernetes_asyncio, the one
KubeSpawner uses), the objects it sends (built with hera), the pod command
(papermill executing the notebook with a real kernel, reading and writing
through papermill's own S3 handler) and boto3 reading the outputs back.
The tests build on each other and run in order; the last one checks every
API call made against the Role the chart grants (`ARGO_ROLE_RULES`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import kubernetes_validate
import nbformat
import pytest
from analysis_hub.backends.kubernetes.argo_executor import ARGO_ROLE_RULES, ArgoExecutor
from analysis_hub.backends.kubernetes.profiles import CHART_USER_TOLERATIONS, ClusterFacts
from analysis_hub.backends.kubernetes.workflows import (
    WorkflowSettings,
    run_folder_claim_name,
    template_name,
    version_pod,
    workflow,
    workflow_name,
)
from analysis_hub.catalog import resolve
from analysis_hub.catalog_source import CatalogSource
from analysis_hub.pipelines.specs import RunSpec
from argo_cluster import BUCKET, IMAGE_REFS
from harness import REPO
from notebooks import make_notebook

pytestmark = pytest.mark.integration
pytest_plugins = ["argo_cluster"]  # the fixtures s3, cluster and executor

K8S = "1.32.0"
FAILING = make_notebook("print(greeting * n)", "1/0", "print('never')")
SLOW = make_notebook("print('started', flush=True)", "import time\ntime.sleep(600)")


def spec(run_id: int, pipeline: str = "daily", profile: str = "pyspark", **changes) -> RunSpec:
    resolved = resolve(CatalogSource(REPO / "profiles", REPO / "images").current().get(profile))
    base = RunSpec(
        run_id=run_id,
        team="data-team",
        pipeline=pipeline,
        version=1,
        image=resolved.image,
        kernel="python3",
        parameters={"n": 2, "greeting": "ho"},
        memory_limit=resolved.resources.memory_limit,
        timeout=600,
        retries=2,
        profile=resolved,
    )
    return dataclasses.replace(base, **changes)


async def run_with_controller(executor, api, behaviour, run_spec, notebook, out_dir):
    """Run through the executor while the stand-in controller acts on the Workflow it submits."""

    async def controller():
        name = await api.created.get()
        await behaviour(name)
        return name

    outcome, name = await asyncio.gather(
        executor.run(run_spec, json.dumps(notebook), out_dir), asyncio.wait_for(controller(), 300)
    )
    return outcome, name


async def test_a_failing_notebook_runs_as_a_workflow_and_renders_at_its_error_cell(
    cluster, executor, tmp_path
):
    """A run is a Workflow from the version's WorkflowTemplate, labelled with team, pipeline, version
    and run, with the deployment's timeout and retries; its pod runs papermill on the version's
    notebook (uploaded to the artifact store) with the run's parameters, and the executor reads the
    output notebook and the log back from S3: the run fails at the `1/0` cell, output.html shows the
    error there, and the reason is the notebook's error, as for a local run."""
    api, argo, _ = cluster
    outcome, name = await run_with_controller(executor, api, argo.run_pod, spec(41), FAILING, tmp_path)

    output = nbformat.read(tmp_path / "output.ipynb", as_version=4)
    failing = next(i for i, c in enumerate(output.cells) if c.source == "1/0")
    assert (outcome.status, outcome.exit_code, outcome.error_cell) == ("failed", 1, failing)
    assert "ZeroDivisionError" in outcome.reason
    assert "hoho" in (tmp_path / "log.txt").read_text()  # the cell's output, with the run's parameters
    html = (tmp_path / "output.html").read_text()
    assert "ZeroDivisionError" in html and "never" in html
    wf = api.objects[("workflows", name)]
    assert wf["metadata"]["labels"] == {
        "analysis-hub/team": "data-team",
        "analysis-hub/pipeline": "daily",
        "analysis-hub/version": "1",
        "analysis-hub/run": "41",
    }
    assert wf["spec"]["workflowTemplateRef"] == {"name": template_name(spec(41))}
    assert (wf["spec"]["activeDeadlineSeconds"], wf["spec"]["retryStrategy"]["limit"]) == (600, 2)
    assert json.loads(wf["spec"]["arguments"]["parameters"][0]["value"]) == {"n": 2, "greeting": "ho"}
    assert [(v, r) for v, r, _ in api.received if r == "workflowtemplates"] == [
        ("create", "workflowtemplates")
    ]


async def test_a_redeployed_version_updates_its_template_and_a_good_run_succeeds(cluster, executor, tmp_path):
    """Deploying again with another timeout updates the stored WorkflowTemplate in place (with the
    resourceVersion it read); the next run succeeds with the notebook's outputs from S3."""
    api, argo, _ = cluster
    changed = spec(42, timeout=900, parameters={"n": 3, "greeting": "hi"})
    await executor.prepare(changed)
    template = api.objects[("workflowtemplates", template_name(changed))]
    assert template["spec"]["activeDeadlineSeconds"] == 900
    assert [v for v, r, _ in api.received if r == "workflowtemplates"] == ["create", "update"]
    notebook = make_notebook("print(greeting * n)")
    outcome, _ = await run_with_controller(executor, api, argo.run_pod, changed, notebook, tmp_path)
    assert (outcome.status, outcome.exit_code, outcome.error_cell) == ("succeeded", 0, None)
    output = nbformat.read(tmp_path / "output.ipynb", as_version=4)
    assert "hihihi" in output.cells[-1].outputs[0]["text"]


async def test_runs_of_one_version_at_once_leave_its_template_alone(cluster, executor, tmp_path):
    """Two runs of one deployed version start together, each with its own parameters and deadline:
    each Workflow carries its own, both succeed, and neither updates the version's template (a
    Workflow's parameters and deadline override its template's), so runs never race to store it."""
    api, argo, _ = cluster
    await executor.prepare(spec(0, pipeline="hourly"))
    stored = list(api.received)
    notebook = make_notebook("print(greeting * n)")
    runs = [
        spec(110, pipeline="hourly", parameters={"n": 1, "greeting": "ho"}),
        spec(111, pipeline="hourly", parameters={"n": 5, "greeting": "ho"}, timeout=300),
    ]
    (first, _), (second, _) = await asyncio.gather(
        *(
            run_with_controller(executor, api, argo.run_pod, run, notebook, tmp_path / str(run.run_id))
            for run in runs
        )
    )
    assert (first.status, second.status) == ("succeeded", "succeeded")
    printed = [
        nbformat.read(tmp_path / f / "output.ipynb", as_version=4).cells[-1].outputs[0]["text"]
        for f in ("110", "111")
    ]
    assert printed == ["ho\n", "hohohohoho\n"]
    assert [(v, r) for v, r, _ in api.received[len(stored) :] if r == "workflowtemplates"] == []
    deadlines = {
        o["metadata"]["labels"]["analysis-hub/run"]: o["spec"]["activeDeadlineSeconds"]
        for (kind, _), o in api.objects.items()
        if kind == "workflows" and o["metadata"]["labels"]["analysis-hub/run"] in ("110", "111")
    }
    assert deadlines == {"110": 600, "111": 300}


@pytest.mark.parametrize(
    ("phase", "message", "node_message", "status", "reason"),
    [
        ("Succeeded", "", "", "succeeded", ""),
        ("Failed", "", "Error (exit code 2)", "failed", "Error (exit code 2)"),
        ("Error", "pod deleted", "pod deleted", "failed", "pod deleted"),
        (
            "Failed",
            "",
            "Pod was active on the node longer than the specified deadline",
            "timed_out",
            "stopped after the timeout of 600 s",
        ),
        (
            "Failed",
            "Step exceeded its deadline",
            "Step exceeded its deadline",
            "timed_out",
            "timeout of 600 s",
        ),
        ("Failed", "", "OOMKilled (exit code 137)", "failed", "more than its memory limit (2 GiB)"),
    ],
)
async def test_argo_phases_become_run_states(
    cluster, executor, tmp_path, phase, message, node_message, status, reason
):
    """Succeeded, Failed, Error, the pod's and the Workflow's deadlines and an out-of-memory kill,
    reported by Argo without the notebook having run, become the run's status and reason; the log
    then holds Argo's messages."""
    api, argo, _ = cluster
    code = {"Succeeded": 0, "Error (exit code 2)": 2, "OOMKilled (exit code 137)": 137}.get(
        node_message or phase
    )

    async def scripted(name):
        await api.set_status(name, {"phase": "Pending"})
        await argo.finish(name, phase, message, code, node_message)

    outcome, _ = await run_with_controller(
        executor, api, scripted, spec(50, memory_limit=2 * 2**30), FAILING, tmp_path
    )
    assert outcome.status == status
    assert reason in outcome.reason
    if node_message:
        assert node_message in (tmp_path / "log.txt").read_text()


async def test_a_stopped_run_ends_as_cancelled_with_its_partial_output(cluster, executor, s3, tmp_path):
    """cancel(run_id) stops the run's Workflow with Argo's stop (a merge patch of spec.shutdown); the
    pod gets SIGTERM, the run ends as cancelled, and its output so far and log are kept."""
    api, argo, _ = cluster
    run_spec = spec(60, pipeline="slow")
    _, client = s3

    async def run_then_cancel(name):
        running = asyncio.ensure_future(argo.run_pod(name))
        key = f"analysis-hub/data-team/slow/runs/{name}/output.ipynb"
        while "started" not in _outputs(client, key):  # the first cell ran: the notebook is going
            await asyncio.sleep(0.2)
        assert await executor.cancel(60) is True
        await running

    outcome, _ = await run_with_controller(executor, api, run_then_cancel, run_spec, SLOW, tmp_path)
    assert outcome.status == "cancelled"
    assert ("patch", "workflows", {"spec": {"shutdown": "Stop"}}) in api.received
    assert "stopped by signal 15" in (tmp_path / "log.txt").read_text()
    output = nbformat.read(tmp_path / "output.ipynb", as_version=4)
    assert "started" in output.cells[-2].outputs[0]["text"]
    assert await executor.cancel(60) is False  # nothing left to stop


async def test_a_workflow_argo_never_ends_is_stopped_after_its_deadline(
    cluster, executor, tmp_path, monkeypatch
):
    """With Argo's controller gone, a Workflow stays Pending: the executor stops following it once
    the run's deadline and a grace period have passed, stops it, and the run is timed_out rather
    than running forever."""
    api, _, _ = cluster
    monkeypatch.setattr(executor, "grace_seconds", 0)

    async def nothing_happens(name):
        await api.set_status(name, {"phase": "Pending"})

    outcome, name = await run_with_controller(
        executor, api, nothing_happens, spec(80, timeout=1), FAILING, tmp_path
    )
    assert outcome.status == "timed_out"
    assert api.objects[("workflows", name)]["spec"]["shutdown"] == "Stop"
    assert "after its deadline" in (tmp_path / "log.txt").read_text()


async def test_a_run_the_api_refuses_fails_with_the_apis_reason(cluster, tmp_path):
    """A run the Kubernetes API refuses (here: a namespace the service's Role doesn't cover) fails
    at once with the API's own message, and nothing is submitted."""
    api, _, _ = cluster
    from kubernetes_asyncio.client import ApiClient, Configuration

    elsewhere = ArgoExecutor(
        "other-namespace",
        ClusterFacts(images=IMAGE_REFS),
        WorkflowSettings(f"s3://{BUCKET}/analysis-hub", "analysis-hub-pipeline-run"),
        api_client=lambda: ApiClient(Configuration(host=cluster[2])),
        s3_client=lambda: pytest.fail("nothing may be uploaded before the template is stored"),
    )
    before = len(api.objects)
    outcome = await elsewhere.run(spec(90), json.dumps(FAILING), tmp_path)
    await elsewhere.close()
    assert (outcome.status, outcome.exit_code) == ("failed", None)
    assert "is forbidden" in outcome.reason and "other-namespace" in outcome.reason
    assert len(api.objects) == before


WRITES_ROWS = make_notebook(
    "import os\nfolder = os.environ['ANALYSIS_HUB_RUN_FOLDER']",
    "open(f'{folder}/rows.txt', 'w').write('3')",
)
READS_ROWS_THEN_FAILS = make_notebook(
    "import os\nfolder = os.environ['ANALYSIS_HUB_RUN_FOLDER']",
    "print('rows:', open(f'{folder}/rows.txt').read())",
    "1/0",
)
READS_ROWS = make_notebook(
    "import os\nfolder = os.environ['ANALYSIS_HUB_RUN_FOLDER']",
    "print('rows:', open(f'{folder}/rows.txt').read())\nopen(f'{folder}/model.txt', 'w').write('ok')",
)


async def test_a_workflows_steps_share_the_runs_folder_and_a_repair_starts_from_its_copy(
    cluster, executor, tmp_path
):
    """A workflow's steps are Workflows of their own step templates that mount one claim per run at
    /home/jovyan/run-folder (`ANALYSIS_HUB_RUN_FOLDER`): what the first step writes, the second
    reads. The claim passes kubernetes-validate (the stand-in refuses others). A failed run keeps its
    claim for 7 days (annotated); its repair's claim is a clone of it (`dataSource`), so the step
    that runs again reads the kept step's file, and the clone's writes leave the original alone. A
    succeeded run's claim is deleted when it ends, an expired one at the next end, and a repair
    whose source is gone fails with that reason before submitting anything."""
    api, argo, _ = cluster
    flow = functools.partial(spec, pipeline="flow", run_folder=Path("/not/on/this/machine"))
    prepare, model = flow(80, step="prepare"), flow(80, step="model")
    first, _ = await run_with_controller(executor, api, argo.run_pod, prepare, WRITES_ROWS, tmp_path / "1")
    failed, name = await run_with_controller(
        executor, api, argo.run_pod, model, READS_ROWS_THEN_FAILS, tmp_path / "2"
    )
    assert (first.status, failed.status) == ("succeeded", "failed")
    assert "rows: 3" in (tmp_path / "2" / "log.txt").read_text()
    claim = run_folder_claim_name("data-team", "flow", 80)
    pod = argo.pod_of(name)
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "run-folder")
    assert volume["persistentVolumeClaim"] == {"claimName": claim}
    main = pod["spec"]["containers"][0]
    assert {"name": "run-folder", "mountPath": "/home/jovyan/run-folder"} in main["volumeMounts"]
    assert {"name": "ANALYSIS_HUB_RUN_FOLDER", "value": "/home/jovyan/run-folder"} in main["env"]
    stored = api.objects[("persistentvolumeclaims", claim)]
    assert stored["metadata"]["labels"]["analysis-hub/run"] == "80"
    assert stored["spec"]["resources"] == {"requests": {"storage": "10Gi"}}
    assert [n for p, n in api.objects if p == "persistentvolumeclaims"] == [claim]  # one per run

    await executor.end_run(80, "failed")
    kept = api.objects[("persistentvolumeclaims", claim)]["metadata"]["annotations"][
        "analysis-hub/delete-after"
    ]
    assert timedelta(days=6.9) < datetime.fromisoformat(kept) - datetime.now(UTC) <= timedelta(days=7)

    repair = flow(81, step="model", run_folder_copy_of=80)
    repaired, _ = await run_with_controller(executor, api, argo.run_pod, repair, READS_ROWS, tmp_path / "3")
    assert repaired.status == "succeeded"
    assert "rows: 3" in (tmp_path / "3" / "log.txt").read_text()
    copy = run_folder_claim_name("data-team", "flow", 81)
    assert api.objects[("persistentvolumeclaims", copy)]["spec"]["dataSource"] == {
        "kind": "PersistentVolumeClaim",
        "name": claim,
    }
    assert (api.claim_folder(copy) / "model.txt").exists()
    assert not (api.claim_folder(claim) / "model.txt").exists()

    await executor.end_run(81, "succeeded")
    assert api.claim_folder(copy) is None and api.claim_folder(claim) is not None
    api.objects[("persistentvolumeclaims", claim)]["metadata"]["annotations"]["analysis-hub/delete-after"] = (
        "2026-01-01T00:00:00+00:00"
    )
    await executor.end_run(81, "succeeded")  # any run's end deletes what has expired
    assert api.claim_folder(claim) is None

    workflows = len([p for p, _ in api.objects if p == "workflows"])
    gone = await executor.run(
        flow(82, step="model", run_folder_copy_of=80), json.dumps(READS_ROWS), tmp_path / "4"
    )
    assert (
        gone.status == "failed" and "run folder of run 80" in gone.reason and "no longer kept" in gone.reason
    )
    assert len([p for p, _ in api.objects if p == "workflows"]) == workflows
    assert api.claim_folder(run_folder_claim_name("data-team", "flow", 82)) is None


async def test_every_object_sent_passes_argos_schema_and_its_pods_are_valid(cluster, executor):
    """Every object the executor sent passed hera's models of Argo's schema (the stand-in refuses
    others), and the pod each Workflow makes, a GPU version's included, is a valid Kubernetes 1.32
    pod: the profile's image and limits, non-root, no API token for the notebook, the chart's
    tolerations."""
    api, argo, _ = cluster
    gpu = spec(70, pipeline="train", profile="pytorch")
    await executor.prepare(gpu)
    await executor.api.create_workflow(
        workflow(gpu, workflow_name(gpu, "gpu"), version_pod(gpu, executor.cluster))
    )
    assert api.refused == []
    assert {r for _, r, _ in api.received} == {"workflows", "workflowtemplates", "persistentvolumeclaims"}
    names = [n for (p, n) in api.objects if p == "workflows"]
    assert len(names) == 16  # every Workflow of the tests before, and the GPU one
    for name in names:
        pod = argo.pod_of(name)
        kubernetes_validate.validate(pod, K8S, strict=True)
        main = pod["spec"]["containers"][0]
        assert main["image"] == IMAGE_REFS["pytorch" if "train" in name else "pyspark"]
        assert main["securityContext"]["runAsNonRoot"] is True
        assert main["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert pod["spec"]["automountServiceAccountToken"] is False
        assert pod["spec"]["tolerations"][:2] == list(CHART_USER_TOLERATIONS)
        assert pod["metadata"]["labels"]["analysis-hub/pipeline-run"] == "true"  # the chart's policy
    template = api.objects[("workflowtemplates", template_name(gpu))]
    container = template["spec"]["templates"][0]["container"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert template["spec"]["executor"] == {"serviceAccountName": "analysis-hub-pipeline-run"}


async def test_the_api_calls_made_are_exactly_what_the_role_allows(cluster):
    """RBAC: the calls the executor made over these tests, as (API group, resource, verb), are
    exactly those `ARGO_ROLE_RULES` (the chart's Role) allows: every rule is needed, none is missing."""
    api, _, _ = cluster
    allowed = {
        (group, resource, verb)
        for rule in ARGO_ROLE_RULES
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert api.rules_used() == allowed


def _outputs(client, key: str) -> str:
    """The cells' outputs so far in the notebook papermill is writing to S3."""
    try:
        text = client.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
    except client.exceptions.NoSuchKey:
        return ""
    cells = nbformat.reads(text, as_version=4).cells
    return "".join(o.get("text", "") for c in cells if c.cell_type == "code" for o in c.outputs)
