"""What the workflow integration tests share: their hub (`start_workflows_hub`), REST helpers for
its pipelines service, a webhook receiver, the processes a run holds, and the notebooks of the
issue's workflows (pyspark → tensorflow → pytorch; a step that fails until a flag file exists).
Each notebook step records its outputs with analysis_hub_outputs."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import nbformat
import psutil
import yaml
from harness import REPO, make_workdir, start_hub
from notebooks import make_notebook as notebook

GROUPS = {"data-team": ["alice"], "gpu-team": ["bob"], "ml-leads": ["carol"]}  # ml-leads approve


def start_workflows_hub(**settings):
    """A hub for the workflow tests: alice in data-team, bob in gpu-team, carol in ml-leads, and a
    catalog copy adding `gpu-only`, a profile only gpu-team may use; `hub.api` is the service's.
    `settings` go to `start_hub` (a backend, say)."""
    workdir = make_workdir()
    catalog = workdir / "catalog"
    shutil.copytree(REPO / "profiles", catalog)
    gpu_only = {"slug": "gpu-only", "display_name": "GPU team's", "image": "pyspark"}
    (catalog / "gpu-only.yaml").write_text(yaml.safe_dump({**gpu_only, "allowed_groups": ["gpu-team"]}))
    running = start_hub(workdir, catalog=str(catalog), auth={"groups": GROUPS}, **settings)
    running.api = f"{running.url}/services/pipelines/api"
    return running


def api(hub, user, method: str, path: str, **kwargs):
    return user.api.request(method, f"{hub.api}/{path}", timeout=120, **kwargs)


def publish_workflow(hub, user, pipeline: str, spec: dict, notebooks: dict, **deployment) -> dict:
    """Publish `spec` (pipeline.yaml) with its notebooks as the next version, and deploy it."""
    body = {"spec": yaml.safe_dump(spec, sort_keys=False), "notebooks": notebooks, "message": "workflow"}
    response = api(hub, user, "POST", f"pipelines/{pipeline}/versions", json=body)
    assert response.status_code == 201, response.text
    deployed = api(hub, user, "PUT", f"pipelines/{pipeline}/deployment", json=deployment)
    assert deployed.status_code == 200, deployed.text
    return response.json()


def start_run(hub, user, pipeline: str) -> int:
    started = api(hub, user, "POST", f"pipelines/{pipeline}/runs", json={"parameters": {}})
    assert started.status_code == 201, started.text
    return started.json()["id"]


def wait_run(hub, user, run_id: int, until=lambda run: run["finished"], timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = api(hub, user, "GET", f"runs/{run_id}").json()
        if until(run):
            return run
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} did not get there in {timeout} s: {run}")


def steps_of(run: dict) -> dict[str, dict]:
    return {s["step"]: s for s in run["steps"]}


def step_output(hub, user, run_id: int, step: str) -> nbformat.NotebookNode:
    response = api(hub, user, "GET", f"runs/{run_id}/steps/{step}/output")
    assert response.status_code == 200, response.text
    return nbformat.reads(response.text, as_version=4)


def printed(nb: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))


def injected(nb: nbformat.NotebookNode) -> str:
    return "".join(c.source for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))


def run_folder(hub, run_id: int) -> Path:
    return Path(hub.settings["data_dir"]) / "pipelines" / "runs" / str(run_id) / "shared"


def wait_runs(hub, user, pipeline: str, count: int, timeout: float = 300) -> list[dict]:
    """The pipeline's runs once `count` of them have finished (newest first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = api(hub, user, "GET", f"pipelines/{pipeline}/runs").json()
        if len(runs) >= count and all(r["finished"] for r in runs):
            return runs
        time.sleep(0.5)
    raise AssertionError(f"{pipeline} has not {count} finished runs in {timeout} s: {runs}")


def processes_in(folder: Path) -> list[dict]:
    """Processes whose working directory or command line is inside `folder`: pid, user, command."""
    found = []
    for proc in psutil.process_iter(["pid", "cwd", "cmdline", "username"]):
        cwd, cmdline = proc.info["cwd"] or "", " ".join(proc.info["cmdline"] or [])
        if cwd.startswith(str(folder)) or str(folder) in cmdline:
            found.append({"pid": proc.info["pid"], "user": proc.info["username"], "command": cmdline})
    return found


def papermill_in(folder: Path) -> list[dict]:
    return [p for p in processes_in(folder) if "-m papermill" in p["command"]]


# Where a step runs: its interpreter, and the memory limit of its cgroup (cgroup v1, as here).
WHERE = (
    "import pathlib, sys\n"
    "print('python:', sys.executable)\n"
    "lines = open('/proc/self/cgroup').read().splitlines()\n"
    "groups = {c: p for _, c, p in (line.split(':', 2) for line in lines)}\n"
    "limit = pathlib.Path('/sys/fs/cgroup/memory' + groups.get('memory', '/?'), 'memory.limit_in_bytes')\n"
    "print('memory limit:', limit.read_text().strip() if limit.exists() else None)"
)

# Spark writes the dataset as Parquet; the tensorflow step reads it with pyarrow (in its image).
PREPARE = notebook(
    WHERE,
    "import os\n"
    "from pyspark.sql import SparkSession\n"
    "from analysis_hub_outputs import record\n"
    "folder = os.environ['ANALYSIS_HUB_RUN_FOLDER']\n"
    "spark = (SparkSession.builder.master('local[1]').config('spark.ui.enabled', 'false')\n"
    "         .config('spark.sql.shuffle.partitions', '1').getOrCreate())\n"
    "df = spark.range(rows).selectExpr(f'id / {rows} as x', f'2 * id / {rows} + 1 as y')\n"
    "df.write.parquet(f'{folder}/data.parquet')\n"
    "record('rows', spark.read.parquet(f'{folder}/data.parquet').count())\n"
    "spark.stop()",
    parameters="rows = 10",
)
TRAIN = notebook(
    WHERE,
    "import os\n"
    "import pyarrow.parquet as pq\n"
    "import tensorflow as tf\n"
    "from analysis_hub_outputs import record\n"
    "print('prepare_rows:', prepare_rows)\n"
    "table = pq.read_table(os.environ['ANALYSIS_HUB_RUN_FOLDER'] + '/data.parquet')\n"
    "record('rows_read', table.num_rows)\n"
    "xs = table.column('x').to_numpy().astype('float32')\n"
    "ys = table.column('y').to_numpy().astype('float32')\n"
    "data = tf.data.Dataset.from_tensor_slices((xs, ys))\n"
    "tf.keras.utils.set_random_seed(1)\n"
    "model = tf.keras.Sequential([tf.keras.Input((1,)), tf.keras.layers.Dense(1)])\n"
    "model.compile(optimizer='sgd', loss='mse')\n"
    "history = model.fit(data.map(lambda x, y: (tf.reshape(x, [1]), y)).batch(8), epochs=1, verbose=0)\n"
    "record('loss', float(history.history['loss'][-1]))",
    parameters="prepare_rows = 0",
)
REPORT = notebook(
    WHERE,
    "import os\n"
    "from analysis_hub_outputs import record\n"
    "path = os.environ['ANALYSIS_HUB_RUN_FOLDER'] + '/report.txt'\n"
    "with open(path, 'w') as f:\n"
    "    f.write(f'{prepare_rows} rows, loss {train_loss}')\n"
    "record('report', path)",
    parameters="prepare_rows = 0\ntrain_loss = -1.0",
)
ACROSS_PROFILES = {
    "steps": [
        {"name": "prepare", "notebook": "prepare.ipynb", "profile": "pyspark", "parameters": {"rows": 40}},
        {
            "name": "train",
            "notebook": "train.ipynb",
            "profile": "tensorflow",
            "depends_on": ["prepare"],
            "when": "prepare.rows > 0",
        },
        {
            "name": "report",
            "notebook": "report.ipynb",
            "profile": "pytorch",
            "choices": {"accelerator": "cpu"},
            "depends_on": ["train"],
            "when": ["train.loss < 100"],
        },
        # The threshold's other side: a step that must not run when the metric passes.
        {
            "name": "retrain",
            "notebook": "report.ipynb",
            "profile": "pytorch",
            "choices": {"accelerator": "cpu"},
            "depends_on": ["train"],
            "when": ["train.loss >= 100"],
        },
    ]
}


FIRST = notebook(
    "import os\n"
    "from analysis_hub_outputs import record\n"
    "with open(os.environ['ANALYSIS_HUB_RUN_FOLDER'] + '/first-ran.txt', 'a') as f:\n"
    "    f.write('ran\\n')\n"
    "record('n', 7)",
    parameters="",
)
SECOND = notebook(
    "import os\n"
    "from analysis_hub_outputs import record\n"
    "if not os.path.exists(flag):\n"
    "    raise RuntimeError(f'no flag at {flag}')\n"
    "record('doubled', 2 * first_n)",
    parameters="flag = ''\nfirst_n = 0",
)
THIRD = notebook(
    "from analysis_hub_outputs import record\nrecord('total', second_doubled + 1)",
    parameters="second_doubled = 0",
)

SHIP = notebook(  # after an approval gate
    "from analysis_hub_outputs import record\nrecord('shipped', first_n)", parameters="first_n = 0"
)
