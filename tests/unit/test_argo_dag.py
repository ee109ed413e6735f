"""A workflow version on Argo: the DAG WorkflowTemplate, its pods, its runner options, chain Sensors.

No Kubernetes API server or Argo controller can run here: the template is
checked against hera's models of Argo's schema (`hera.workflows.models`, the
Sensor and EventSource against `hera.events.models`) and each step's pod, as
Argo would create it, against the Kubernetes 1.32 OpenAPI schema
(kubernetes-validate, strict). The runner's new options run for real: the
same source the pods run, with real papermill and a real kernel, on local files.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import kubernetes_validate
import nbformat
import pytest
from analysis_hub.backends.kubernetes.profiles import CHART_USER_TOLERATIONS, GPU_RESOURCE, ClusterFacts
from analysis_hub.backends.kubernetes.sensors import (
    OUTCOME_LABEL,
    outcome_patch,
    sensor_for,
    workflow_event_source,
)
from analysis_hub.backends.kubernetes.workflow_dag import (
    OUTPUTS_FOLDER,
    RESULTS,
    RUN_FOLDER,
    RUN_VOLUME,
    dag_template,
)
from analysis_hub.backends.kubernetes.workflows import WorkflowSettings, runner_source
from analysis_hub.catalog import resolve
from analysis_hub.pipelines.dag import StepState, parse_condition
from analysis_hub.pipelines.specs import RUN_FOLDER_ENV
from analysis_hub.pipelines.workflow import check_workflow
from unit_support import REPO

K8S = "1.32.0"
IMAGE_REFS = {n: f"registry.example.com/{n}:2026.12" for n in ("pyspark", "tensorflow", "pytorch")}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
SETTINGS = WorkflowSettings(
    "s3://runs", "analysis-hub-pipeline-run", run_folder_size="20Gi", run_folder_storage_class="fast-rwo"
)
CLUSTER = ClusterFacts(
    images=IMAGE_REFS, hadoop_configmap="hadoop-client", hadoop_images=frozenset({"pyspark"})
)
# The issue's workflow: Spark prepares, TensorFlow trains if there are rows, a person approves,
# and a GPU step publishes if the metric passes its threshold.
PIPELINE = """
steps:
  - {name: prepare, notebook: prepare.ipynb, profile: pyspark, parameters: {rows: 1000}, timeout: 30m}
  - name: train
    notebook: train.ipynb
    profile: tensorflow
    depends_on: [prepare]
    when: prepare.rows > 0
    retries: 2
  - {name: review, kind: approval, approvers: ml-leads, timeout: 72h, depends_on: [train]}
  - name: publish
    notebook: publish.ipynb
    profile: pytorch
    choices: {accelerator: gpu2}
    depends_on: [review]
    when: train.accuracy >= 0.8
"""


def notebook(parameters: str, *cells: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    tagged = nbformat.v4.new_code_cell(parameters)
    tagged.metadata["tags"] = ["parameters"]
    nb.cells = [tagged, *(nbformat.v4.new_code_cell(c) for c in cells)]
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    return nb


NOTEBOOKS = {
    "prepare.ipynb": notebook("rows = 10"),
    "train.ipynb": notebook("epochs = 1\nprepare_rows = 0"),
    "publish.ipynb": notebook("train_accuracy = 0.0\nmodel_name = 'm'"),
}


def steps_of(text: str, notebooks: dict, catalog):
    """`check_workflow` with a resolver over the repository's real catalog."""
    return check_workflow(
        text, notebooks, lambda profile, choices, _nb: resolve(catalog.get(profile), choices)
    )


@pytest.fixture
def template(repo_catalog) -> dict:
    steps = steps_of(PIPELINE, NOTEBOOKS, repo_catalog)
    return dag_template("ml", "churn", 4, steps, {"train.epochs": 3}, 3600, 1, CLUSTER, SETTINGS)


def by_name(template: dict) -> dict:
    return {t["name"]: t for t in template["spec"]["templates"]}


def pod_of(step: dict, template: dict) -> dict:
    """The pod Argo makes of a DAG step's template (its main container, with the run's claim as the
    volume `volumeClaimTemplates` becomes)."""
    claim = {"name": RUN_VOLUME, "persistentVolumeClaim": {"claimName": "ml-churn-x-run-folder"}}
    spec = {
        "containers": [step["container"]],
        "volumes": [*step.get("volumes", []), claim],
        "securityContext": step["securityContext"],
        "tolerations": step["tolerations"],
        "automountServiceAccountToken": template["spec"]["automountServiceAccountToken"],
        "activeDeadlineSeconds": step["activeDeadlineSeconds"],
    }
    for key in ("nodeSelector", "serviceAccountName", "automountServiceAccountToken"):
        if key in step:
            spec[key] = step[key]
    labels = {**template["spec"]["podMetadata"]["labels"], **step["metadata"]["labels"]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", "labels": labels}, "spec": spec}


def test_the_three_step_workflow_is_one_dag_template_that_argos_schema_reads_back(template):
    """`GET .../argo` of a workflow version is ONE WorkflowTemplate (named like a single-notebook
    version's) whose entrypoint is a DAG: a task per step, in dag.py's order, each on its own
    template, the gate a suspend; hera's models of Argo's schema read it back unchanged."""
    from hera.workflows.models import WorkflowTemplate

    read_back = WorkflowTemplate.model_validate(template).model_dump(
        mode="json", by_alias=True, exclude_none=True
    )
    assert read_back == template
    assert template["metadata"]["name"] == "ml-churn-v4"
    spec = template["spec"]
    dag = by_name(template)[spec["entrypoint"]]["dag"]
    assert dag["failFast"] is False  # a step that handles an upstream failure must still run
    assert [(t["name"], t["template"], t.get("depends")) for t in dag["tasks"]] == [
        ("prepare", "step-prepare", None),
        ("train", "step-train", "prepare.Succeeded"),
        ("review", "gate-review", "train.Succeeded"),
        ("publish", "step-publish", "review.Succeeded && (train.Succeeded || train.Failed)"),
    ]
    # A run's timeout counts its steps, not the 72 h a person may take at the gate.
    assert spec["activeDeadlineSeconds"] == 3600 + 72 * 3600


def test_the_approval_gate_is_a_suspend_that_rejects_at_its_timeout(template):
    """The gate holds no pod: a suspend for its timeout whose decision is supplied on resume and
    defaults to rejected; downstream runs only on `approved`, so the timeout doesn't let it run."""
    gate = by_name(template)["gate-review"]
    assert "container" not in gate
    assert gate["suspend"] == {"duration": str(72 * 3600)}
    [decision] = gate["outputs"]["parameters"]
    assert decision["name"] == "decision"
    assert decision["valueFrom"] == {"supplied": {}, "default": "rejected"}
    assert decision["enum"] == ["approved", "rejected"]
    publish = {t["name"]: t for t in by_name(template)["workflow"]["dag"]["tasks"]}["publish"]
    assert publish["when"].startswith("{{tasks.review.outputs.parameters.decision}} == approved && ")


def test_output_conditions_are_evaluated_by_the_upstream_step_and_tested_by_when(template):
    """`prepare.rows > 0` and `train.accuracy >= 0.8` become results the upstream step's runner
    writes (`true`/`false`, default false) and the downstream tasks' `when` tests."""
    templates = by_name(template)
    tasks = {t["name"]: t for t in templates["workflow"]["dag"]["tasks"]}
    assert tasks["train"]["when"] == "{{tasks.prepare.outputs.parameters.when-train-0}} == true"
    assert tasks["publish"]["when"] == (
        "{{tasks.review.outputs.parameters.decision}} == approved"
        " && {{tasks.train.outputs.parameters.when-publish-0}} == true"
    )
    prepare = templates["step-prepare"]
    assert f'--conditions=[["{RESULTS}/when-train-0", "rows", ">", 0]]' in prepare["container"]["args"]
    assert prepare["outputs"]["parameters"] == [
        {"name": "outputs", "valueFrom": {"path": f"{RESULTS}/outputs.json", "default": "{}"}},
        {"name": "when-train-0", "valueFrom": {"path": f"{RESULTS}/when-train-0", "default": "false"}},
    ]
    train_args = templates["step-train"]["container"]["args"]
    assert f'--conditions=[["{RESULTS}/when-publish-0", "accuracy", ">=", 0.8]]' in train_args


def test_each_step_is_a_pod_from_its_own_profile_and_passes_kubernetes_validate(template, repo_catalog):
    """Each notebook step runs its own profile's image and pod settings: Spark with the Hadoop
    configuration, TensorFlow on CPU, the GPU option with its 2-GPU limit, node pool and GPU
    tolerations (after the chart's); non-root, no API token, the run-pod label the NetworkPolicy
    selects; per-step deadlines and retries fall back to the deployment's; every pod is valid."""
    templates = by_name(template)
    prepare, train, publish = (templates[f"step-{n}"] for n in ("prepare", "train", "publish"))
    assert [t["container"]["image"] for t in (prepare, train, publish)] == [
        IMAGE_REFS["pyspark"],
        IMAGE_REFS["tensorflow"],
        IMAGE_REFS["pytorch"],
    ]
    assert {"name": "hadoop-conf", "configMap": {"name": "hadoop-client"}} in prepare["volumes"]
    assert "HADOOP_CONF_DIR" in {e["name"] for e in prepare["container"]["env"]}
    gpu = resolve(repo_catalog.get("pytorch"), {"accelerator": "gpu2"})
    assert publish["container"]["resources"]["limits"][GPU_RESOURCE] == str(gpu.resources.gpus) == "2"
    assert publish["nodeSelector"] == {"analysis-hub/node-pool": "gpu"}
    assert publish["tolerations"] == [*CHART_USER_TOLERATIONS, GPU_TOLERATION]
    assert {"name": "dshm", "mountPath": "/dev/shm"} in publish["container"]["volumeMounts"]
    for cpu_step in (prepare, train):
        assert GPU_RESOURCE not in cpu_step["container"]["resources"]["limits"]
        assert "nodeSelector" not in cpu_step and cpu_step["tolerations"] == list(CHART_USER_TOLERATIONS)
    assert train["container"]["resources"]["limits"]["memory"] == str(6 * 2**30)
    assert [t["activeDeadlineSeconds"] for t in (prepare, train, publish)] == [1800, 3600, 3600]
    assert [t["retryStrategy"]["limit"] for t in (prepare, train, publish)] == [1, 2, 1]
    assert template["spec"]["automountServiceAccountToken"] is False
    assert template["spec"]["executor"] == {"serviceAccountName": "analysis-hub-pipeline-run"}
    for step in (prepare, train, publish):
        assert step["container"]["securityContext"]["runAsNonRoot"] is True
        assert step["metadata"]["labels"]["analysis-hub/pipeline-run"] == "true"
        kubernetes_validate.validate(pod_of(step, template), K8S, strict=True)


def test_the_steps_share_one_run_folder_volume_at_the_same_path(template):
    """One volume claimed per Workflow (size and storage class from settings), mounted at the same
    path in every step (the docker backend's), named by ANALYSIS_HUB_RUN_FOLDER."""
    from analysis_hub.backends.docker.translate import SHARED_RUN_DIR

    assert RUN_FOLDER == SHARED_RUN_DIR == "/home/jovyan/run-folder"
    assert template["spec"]["volumeClaimTemplates"] == [
        {
            "metadata": {"name": RUN_VOLUME},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "fast-rwo",
                "resources": {"requests": {"storage": "20Gi"}},
            },
        }
    ]
    steps = [t for t in template["spec"]["templates"] if "container" in t]
    assert len(steps) == 3
    for step in steps:
        container = step["container"]
        assert {"name": RUN_VOLUME, "mountPath": RUN_FOLDER} in container["volumeMounts"]
        assert {"name": RUN_FOLDER_ENV, "value": RUN_FOLDER} in container["env"]


def test_run_parameters_and_upstream_outputs_become_each_steps_papermill_parameters(template):
    """A step's parameters are a Workflow parameter of its own (the run's `<step>.<name>` values over
    the spec's over the notebook's defaults), and each declared `<upstream>_<output>` is wired to
    that upstream step's recorded outputs; each step's notebook and files have their own URLs."""
    arguments = {p["name"]: json.loads(p["value"]) for p in template["spec"]["arguments"]["parameters"]}
    assert arguments == {
        "prepare-parameters": {"rows": 1000},
        "train-parameters": {"epochs": 3, "prepare_rows": 0},
        "publish-parameters": {"train_accuracy": 0.0, "model_name": "m"},
    }
    templates = by_name(template)
    args = templates["step-train"]["container"]["args"]
    assert args[:5] == [
        "s3://runs/ml/churn/v4/steps/train/input.ipynb",
        "s3://runs/ml/churn/runs/{{workflow.name}}/steps/train/output.ipynb",
        "s3://runs/ml/churn/runs/{{workflow.name}}/steps/train/log.txt",
        "python3",
        "{{workflow.parameters.train-parameters}}",
    ]
    upstream = {a.split("=", 1)[0]: json.loads(a.split("=", 1)[1]) for a in args[5:]}["--upstream"]
    assert upstream == {"prepare_rows": [f"{OUTPUTS_FOLDER}/prepare.json", "rows"]}
    publish_args = templates["step-publish"]["container"]["args"]
    assert f'--upstream={{"train_accuracy": ["{OUTPUTS_FOLDER}/train.json", "accuracy"]}}' in publish_args
    assert not any(a.startswith("--upstream") for a in templates["step-prepare"]["container"]["args"])


def test_status_conditions_replace_the_default_rule_as_in_dag_py(repo_catalog):
    """`train failed` runs a handler once every dependency finished, in whatever state, and only if
    train failed or errored; `review rejected` runs on a gate resumed without approval (at its
    timeout too); a condition on a gate's output never holds."""
    text = """
steps:
  - {name: train, notebook: train.ipynb, profile: tensorflow}
  - {name: review, kind: approval, approvers: ml-leads, timeout: 1h, depends_on: [train]}
  - {name: on_failure, notebook: alert.ipynb, profile: tensorflow, depends_on: [train], when: train failed}
  - {name: on_reject, notebook: alert.ipynb, profile: tensorflow, depends_on: [review], when: review rejected}
  - {name: never, notebook: alert.ipynb, profile: tensorflow, depends_on: [review], when: review.x == 1}
"""
    notebooks = {"train.ipynb": notebook("epochs = 1"), "alert.ipynb": notebook("message = ''")}
    steps = steps_of(text, notebooks, repo_catalog)
    template = dag_template("ml", "alerts", 1, steps, {}, 600, 0, CLUSTER, SETTINGS)
    tasks = {t["name"]: t for t in by_name(template)["workflow"]["dag"]["tasks"]}
    finished = "(train.Succeeded || train.Failed || train.Errored || train.Skipped || train.Omitted)"
    assert tasks["on-failure"]["depends"] == f"{finished} && (train.Failed || train.Errored)"
    assert "when" not in tasks["on-failure"]
    assert tasks["on-reject"]["when"] == "{{tasks.review.outputs.parameters.decision}} != approved"
    assert tasks["on-reject"]["depends"].endswith("&& review.Succeeded")
    assert tasks["never"]["when"] == "{{tasks.review.outputs.parameters.decision}} == approved && false"
    assert all("retryStrategy" not in t for t in template["spec"]["templates"])  # no retries: none
    assert template["spec"]["activeDeadlineSeconds"] == 600 + 3600


def run_step(tmp_path, template: dict, step: str, nb: nbformat.NotebookNode) -> subprocess.CompletedProcess:
    """The runner as a step's container runs it, on local files: the template's options with the
    run folder and the results folder moved under tmp_path, its Workflow parameter's value."""
    source = tmp_path / f"{step}.ipynb"
    nbformat.write(nb, source)
    arguments = {p["name"]: p["value"] for p in template["spec"]["arguments"]["parameters"]}
    args = by_name(template)[f"step-{step}"]["container"]["args"]
    assert args[4] == "{{workflow.parameters." + step + "-parameters}}"
    options = [
        a.replace(RUN_FOLDER, str(tmp_path / "run")).replace(RESULTS, str(tmp_path / step)) for a in args[5:]
    ]
    files = [str(source), str(tmp_path / f"{step}-out.ipynb"), str(tmp_path / f"{step}.log.txt"), "python3"]
    return subprocess.run(
        [sys.executable, "-c", runner_source(), *files, arguments[f"{step}-parameters"], *options],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_runner_passes_recorded_outputs_to_later_steps_and_evaluates_their_conditions(tmp_path, template):
    """With the template's own options, real papermill and a real kernel: prepare records rows
    (from the spec's rows: 1000) with analysis_hub_outputs.record, its runner writes its outputs
    (the `outputs` parameter and the run folder's file) and `prepare.rows > 0` as true; train then
    gets `prepare_rows` from that file as a papermill parameter, and a false `train.accuracy >=
    0.8` is written as false."""
    record = f"import sys; sys.path.insert(0, {str(REPO / 'hub/analysis_hub/singleuser')!r})\n"
    record += "from analysis_hub_outputs import record\n"
    prepare = notebook("rows = 10", record + "record('rows', rows * 2)")
    done = run_step(tmp_path, template, "prepare", prepare)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads((tmp_path / "prepare" / "outputs.json").read_text()) == {"rows": 2000}
    assert json.loads((tmp_path / "run/.analysis-hub/outputs/prepare.json").read_text()) == {"rows": 2000}
    assert (tmp_path / "prepare" / "when-train-0").read_text() == "true"
    train = notebook(
        "epochs = 1\nprepare_rows = 0",
        record + "record('accuracy', 0.5)\nrecord('seen', prepare_rows)",
    )
    done = run_step(tmp_path, template, "train", train)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads((tmp_path / "train" / "outputs.json").read_text()) == {"accuracy": 0.5, "seen": 2000}
    assert (tmp_path / "train" / "when-publish-0").read_text() == "false"


def test_a_failed_step_still_writes_its_outputs_and_false_conditions(tmp_path, template):
    """A notebook that fails after recording nothing still leaves `{}` and `false` (Argo's defaults
    would say the same), and the runner's exit status says it failed."""
    done = run_step(tmp_path, template, "prepare", notebook("rows = 10", "raise RuntimeError('no data')"))
    assert done.returncode == 1
    assert json.loads((tmp_path / "prepare" / "outputs.json").read_text()) == {}
    assert (tmp_path / "prepare" / "when-train-0").read_text() == "false"


@pytest.mark.parametrize(
    ("text", "outputs"),
    [
        ("prepare.rows > 0", {"rows": 3}),
        ("prepare.rows > 0", {"rows": 0}),
        ("prepare.rows > 0", {}),
        ("prepare.rows > 0", {"rows": "many"}),
        ("prepare.rows == 3", {"rows": 3.0}),
        ('prepare.kind == "full"', {"kind": "full"}),
        ("prepare.ok != false", {"ok": None}),
        ("prepare.rows <= 2.5", {"rows": 2}),
    ],
)
def test_the_runner_judges_output_conditions_exactly_as_dag_py(text, outputs):
    """The runner can't import analysis_hub; its comparison of a recorded output gives dag.py's
    answer for present, missing and incomparable values."""
    namespace: dict = {}
    exec(compile(runner_source(), "notebook_runner", "exec"), namespace)
    condition = parse_condition(text)
    expected, _ = condition.holds(StepState("succeeded", outputs))
    assert namespace["condition_holds"](outputs, condition.output, condition.op, condition.value) is expected


def test_the_runner_reads_recorded_outputs_as_the_service_does():
    """One reading of a step's outputs: the runner (which can't import analysis_hub) finds in an
    output notebook what `notebooks.recorded_outputs` finds (the media type `record` displays, the
    last value of a name recorded twice, nothing from other outputs)."""
    from analysis_hub.pipelines.notebooks import recorded_outputs
    from analysis_hub.singleuser.analysis_hub_outputs import MEDIA_TYPE

    def shown(name, value):
        return nbformat.v4.new_output("display_data", data={MEDIA_TYPE: {"name": name, "value": value}})

    nb = notebook("rows = 1", "x", "y")
    nb.cells[1].outputs = [shown("rows", 1), nbformat.v4.new_output("stream", text="hello")]
    nb.cells[2].outputs = [shown("rows", 2), shown("path", "/home/jovyan/run/data.parquet")]
    nb.cells.append(nbformat.v4.new_markdown_cell("notes"))
    namespace: dict = {}
    exec(compile(runner_source(), "notebook_runner", "exec"), namespace)
    found = namespace["recorded_outputs"](json.loads(nbformat.writes(nb)))
    assert found == recorded_outputs(nb) == {"rows": 2, "path": "/home/jovyan/run/data.parquet"}


@pytest.mark.parametrize(
    ("on", "outcomes"),
    [
        ("success", ["succeeded"]),
        ("failure", ["failed", "timed_out", "rejected"]),
        ("any", ["succeeded", "failed", "timed_out", "rejected"]),
    ],
)
def test_a_chained_trigger_is_a_sensor_on_the_upstream_runs_outcome(on, outcomes):
    """After another pipeline: an Argo Events Sensor that Argo Events' schema (hera's models)
    accepts, filtering the upstream team's pipeline's Workflows by the run outcome the service
    labels them with, and submitting a Workflow from the downstream template, named after the
    upstream Workflow's uid so that one upstream run starts one chained run."""
    from hera.events.models import EventSource, Sensor

    sensor = sensor_for("monitoring", "drift", on, "ml-train-v7")
    assert (sensor["apiVersion"], sensor["kind"]) == ("argoproj.io/v1alpha1", "Sensor")
    read_back = Sensor.model_validate(sensor).model_dump(mode="json", by_alias=True, exclude_none=True)
    assert read_back == {"metadata": sensor["metadata"], "spec": sensor["spec"]}  # the model has no kind
    [dependency] = sensor["spec"]["dependencies"]
    assert {f["path"]: f["value"] for f in dependency["filters"]["data"]} == {
        "body.metadata.labels.analysis-hub/team": ["monitoring"],
        "body.metadata.labels.analysis-hub/pipeline": ["drift"],
        f"body.metadata.labels.{OUTCOME_LABEL}": outcomes,
    }
    [trigger] = sensor["spec"]["triggers"]
    submit = trigger["template"]["argoWorkflow"]
    assert submit["operation"] == "submit"
    workflow = json.loads(submit["source"]["inline"])
    assert (workflow["apiVersion"], workflow["kind"]) == ("argoproj.io/v1alpha1", "Workflow")
    assert workflow["spec"] == {"workflowTemplateRef": {"name": "ml-train-v7"}}
    assert workflow["metadata"]["labels"]["analysis-hub/pipeline-run"] == "true"
    [name] = submit["parameters"]
    assert name["src"]["dataKey"] == "body.metadata.uid" and name["dest"] == "metadata.name"
    assert len(workflow["metadata"]["name"]) + 36 <= 63  # a uid appended: still a pod label value
    source = workflow_event_source("analysis-hub")
    watch = source["spec"]["resource"]["workflows"]
    # Argo Events inlines group, version and resource (Go's `json:",inline"`), which hera's
    # generated model lacks; everything else it reads back unchanged.
    gvr = {k: watch.pop(k) for k in ("group", "version", "resource")}
    assert gvr == {"group": "argoproj.io", "version": "v1alpha1", "resource": "workflows"}
    read_back = EventSource.model_validate(source).model_dump(mode="json", by_alias=True, exclude_none=True)
    assert read_back == {"metadata": source["metadata"], "spec": source["spec"]}
    assert watch == {"namespace": "analysis-hub", "eventTypes": ["UPDATE"]}
    assert dependency["eventSourceName"] == source["metadata"]["name"]
    # The label the filter reads is the one the service's patch writes.
    labels = outcome_patch(outcomes[0])["metadata"]["labels"]
    assert f"body.metadata.labels.{next(iter(labels))}" in {f["path"] for f in dependency["filters"]["data"]}
    assert dependency["eventName"] in source["spec"]["resource"]


def test_a_chain_on_an_unknown_outcome_is_refused_by_name():
    """`after_on` other than success, failure or any is refused, naming the key and the choices."""
    with pytest.raises(ValueError, match="after_on: 'always' is not one of success, failure, any"):
        sensor_for("ml", "monitor", "always", "ml-train-v1")


def test_the_run_folder_settings_reach_the_executors_dag_template(tmp_path, repo_catalog):
    """`pipelines.run_folder_*` in the settings file size the run folder of every workflow version
    the Argo executor builds (`dag_template_for`, for `GET .../argo`); bad values are refused by key."""
    from analysis_hub.backends.kubernetes.argo_executor import ArgoExecutor
    from analysis_hub.settings import SettingsError, load_settings

    path = tmp_path / "settings.yaml"
    path.write_text(
        "kubernetes: {namespace: analysis-hub}\n"
        "pipelines: {run_folder_size: 50Gi, run_folder_storage_class: cephfs,"
        " run_folder_access_mode: ReadWriteMany}\n"
    )
    executor = ArgoExecutor.from_settings(load_settings(path, {}), CLUSTER)
    steps = steps_of(PIPELINE, NOTEBOOKS, repo_catalog)
    template = executor.dag_template_for("ml", "churn", 4, steps, {}, 3600, 0)
    [claim] = template["spec"]["volumeClaimTemplates"]
    assert claim["spec"] == {
        "accessModes": ["ReadWriteMany"],
        "storageClassName": "cephfs",
        "resources": {"requests": {"storage": "50Gi"}},
    }
    path.write_text("pipelines: {run_folder_size: 10GB}\n")
    with pytest.raises(SettingsError, match=r"pipelines\.run_folder_size: .*'10GB'"):
        load_settings(path, {})


def test_only_the_spark_driver_step_gets_an_api_token_and_every_step_its_teams_folder(repo_catalog):
    """With Spark on Kubernetes, the pyspark step's pod (the driver) has the Spark service account,
    its token and the driver label, over the Workflow's no-token default; the other steps have
    none. Every step mounts its team's folder where members' servers have it."""
    from analysis_hub.teams import TeamFolder

    cluster = ClusterFacts(
        images=IMAGE_REFS,
        hadoop_images=frozenset({"pyspark"}),
        spark_service_account="spark-driver",
        team_claims={"ml": "analysis-hub-team-ml"},
        teams=(TeamFolder("ml"),),
    )
    steps = steps_of(PIPELINE, NOTEBOOKS, repo_catalog)
    template = dag_template("ml", "churn", 4, steps, {}, 3600, 0, cluster, SETTINGS)
    templates = by_name(template)
    prepare = templates["step-prepare"]
    assert (prepare["serviceAccountName"], prepare["automountServiceAccountToken"]) == ("spark-driver", True)
    assert prepare["metadata"]["labels"]["analysis-hub/spark-driver"] == "true"
    for name in ("step-prepare", "step-train", "step-publish"):
        step = templates[name]
        if name != "step-prepare":
            assert "serviceAccountName" not in step and "automountServiceAccountToken" not in step
        team = {"name": "team-ml", "mountPath": "/home/jovyan/teams/ml"}
        assert team in step["container"]["volumeMounts"]
        kubernetes_validate.validate(pod_of(step, template), K8S, strict=True)


def test_the_charts_run_folder_values_become_the_services_settings():
    """`pipelines.runFolder` in the chart's values reaches the service's settings file (the Argo
    executor's run folder); the defaults are the settings' own, and a bad size is refused by the
    chart's schema before anything is installed."""
    import helm_python as helm
    import yaml
    from analysis_hub.settings import Settings
    from kube_support import find, render_chart

    def settings_of(values: dict) -> Settings:
        manifests = render_chart(values)
        text = find(manifests, "ConfigMap", "analysis-hub-settings")["data"]["settings.yaml"]
        return Settings.model_validate(yaml.safe_load(text))

    run_folder = {"size": "100Gi", "storageClassName": "cephfs", "accessMode": "ReadWriteMany"}
    chosen = settings_of({"pipelines": {"runFolder": run_folder}}).pipelines
    assert (chosen.run_folder_size, chosen.run_folder_storage_class, chosen.run_folder_access_mode) == (
        "100Gi",
        "cephfs",
        "ReadWriteMany",
    )
    default = settings_of({}).pipelines
    assert (default.run_folder_size, default.run_folder_storage_class, default.run_folder_access_mode) == (
        "10Gi",
        None,
        "ReadWriteOnce",
    )
    with pytest.raises(helm.HelmValuesError, match="/pipelines/runFolder/size"):
        render_chart({"pipelines": {"runFolder": {"size": "lots"}}})


# Argo's own naming rules (workflow/validate/validate.go): templates and DAG tasks, parameters.
ARGO_FIELD_NAME = re.compile(r"^[a-zA-Z0-9][-a-zA-Z0-9]*$")
ARGO_PARAMETER_NAME = re.compile(r"^[-a-zA-Z0-9_]+$")
TASK_REFERENCE = re.compile(r"\{\{tasks\.([-a-zA-Z0-9]+)\.outputs\.parameters\.([-a-zA-Z0-9_]+)\}\}")
DEPENDS_TERM = re.compile(r"([a-zA-Z0-9][-a-zA-Z0-9]*)\.(Succeeded|Failed|Errored|Skipped|Omitted)")


@pytest.mark.parametrize("which", ["issue", "handlers"])
def test_every_name_and_reference_in_the_template_is_one_argo_accepts(which, repo_catalog):
    """What hera's models can't check and Argo's validation refuses: task and template names (steps'
    underscores become dashes), parameter names, each task's template, each `when` reading an output
    its upstream task's template declares, from a task its `depends` names, and each
    `{{workflow.parameters.*}}` a step reads being a Workflow argument."""
    text = PIPELINE.replace("name: publish", "name: publish_model") if which == "issue" else HANDLERS
    notebooks = NOTEBOOKS | {"alert.ipynb": notebook("message = ''"), "train2.ipynb": notebook("epochs = 1")}
    steps = steps_of(text, notebooks, repo_catalog)
    template = dag_template("ml", "churn", 4, steps, {}, 3600, 0, CLUSTER, SETTINGS)
    templates = by_name(template)
    arguments = {p["name"] for p in template["spec"]["arguments"]["parameters"]}
    assert all(ARGO_FIELD_NAME.match(name) and len(name) <= 128 for name in templates)
    tasks = templates["workflow"]["dag"]["tasks"]
    assert len(tasks) == len(steps)
    for task in tasks:
        assert ARGO_FIELD_NAME.match(task["name"]) and task["template"] in templates
        depends = {name for name, _ in DEPENDS_TERM.findall(task.get("depends", ""))}
        for upstream, parameter in TASK_REFERENCE.findall(task.get("when", "")):
            assert upstream in depends
            upstream_template = templates[next(t["template"] for t in tasks if t["name"] == upstream)]
            assert parameter in {p["name"] for p in upstream_template["outputs"]["parameters"]}
    for step in templates.values():
        for parameter in (step.get("outputs") or {}).get("parameters", []):
            assert ARGO_PARAMETER_NAME.match(parameter["name"])
        for arg in (step.get("container") or {}).get("args", []):
            for name in re.findall(r"\{\{workflow\.parameters\.([-a-zA-Z0-9_]+)\}\}", arg):
                assert name in arguments
    assert all(ARGO_PARAMETER_NAME.match(name) for name in arguments)


HANDLERS = """
steps:
  - {name: train_model, notebook: train2.ipynb, profile: tensorflow}
  - {name: gate_one, kind: approval, approvers: ml-leads, depends_on: [train_model]}
  - name: on_failure
    notebook: alert.ipynb
    profile: tensorflow
    depends_on: [train_model]
    when: [train_model failed]
  - name: after_gate
    notebook: alert.ipynb
    profile: tensorflow
    depends_on: [gate_one]
    when: ["gate_one rejected", "train_model.loss < 1"]
"""
