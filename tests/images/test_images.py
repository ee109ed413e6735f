"""The curated images, built and run on a real Docker engine.

Each image's own smoke tests (images/<name>/tests/*.py) run inside its
container, through the image's entry point (tini, then the start hooks), as
the image's default user; the docker-stacks conventions are checked in every
image (images/base/tests); and every notebook image must serve
jupyterhub-singleuser as uid 1000 under a hub (a stub hub API here).

`EXPECT_GPU=1` in the environment passes the machine's GPUs to the pytorch and
tensorflow containers and requires them to see one.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis_hub.images import discover_images
from dockerengine import REPO, build_images, docker

pytestmark = pytest.mark.images
NOTEBOOK_IMAGES = tuple(discover_images(REPO / "images"))
EXPECT_GPU = os.environ.get("EXPECT_GPU") == "1"
CORE_SITE = """<?xml version="1.0"?>
<configuration>
  <property><name>fs.defaultFS</name><value>{default_fs}</value></property>
  <property><name>analysis-hub.smoke.marker</name><value>from-core-site</value></property>
</configuration>
"""


@pytest.fixture(scope="module")
def tags():
    return build_images()


def run_in_image(tag: str, script: str, *docker_args: str) -> dict:
    """Run a smoke-test script inside the image; return the JSON line it printed."""
    result = docker(
        "run",
        "--rm",
        "--volume",
        f"{REPO / 'images'}:/images:ro",
        *docker_args,
        tag,
        "python",
        f"/images/{script}",
        check=False,
    )
    assert result.returncode == 0, f"{script} failed in {tag}:\n{result.stdout}\n{result.stderr[-4000:]}"
    report = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"{tag}: {report}")
    return report


@pytest.mark.parametrize("image", ["base", *NOTEBOOK_IMAGES])
def test_every_notebook_image_follows_the_docker_stacks_conventions(tags, image):
    """jovyan uid 1000 gid 100, tini as PID 1, hook folders, the activity and culling policy."""
    expect_jupyter = "0" if image == "base" else "1"  # the base has Python but no Jupyter yet
    run_in_image(tags[image], "base/tests/test_conventions.py", "--env", f"EXPECT_JUPYTER={expect_jupyter}")


def test_pyspark_reads_the_mounted_hadoop_config_and_round_trips_a_hive_table(tags, tmp_path):
    default_fs = "file:///tmp/analysis-hub-smoke"
    (tmp_path / "core-site.xml").write_text(CORE_SITE.format(default_fs=default_fs))
    tmp_path.chmod(0o755)
    report = run_in_image(
        tags["pyspark"],
        "pyspark/tests/test_spark.py",
        "--volume",
        f"{tmp_path}:/etc/hadoop/conf:ro",
        "--env",
        f"EXPECT_DEFAULT_FS={default_fs}",
    )
    assert report["defaultFS"] == default_fs and report["hive_rows"] == 2


# What Spark's executor ConfigMap holds: the driver's conf directory, read-only.
EXECUTOR_CONF = "# the driver's spark-defaults.conf\nspark.sql.catalogImplementation   hive\n"


def _json_line(container: str, key: str, seconds: float) -> dict:
    """The first JSON line with `key` the container printed; fails if it exits or times out first."""
    deadline = time.monotonic() + seconds
    while True:
        logs = docker("logs", container, check=False)
        for line in logs.stdout.splitlines():
            if line.startswith("{") and key in (fields := json.loads(line)):
                return fields
        state = docker("inspect", "--format", "{{.State.Running}}", container, check=False).stdout.strip()
        if state != "true" or time.monotonic() > deadline:
            output = f"{logs.stdout}\n{logs.stderr[-6000:]}"
            raise AssertionError(f"{container} printed no {key!r} line:\n{output}")
        time.sleep(0.5)


def test_pyspark_image_runs_a_kubernetes_executor_from_sparks_executor_argument(tags, tmp_path):
    """The pyspark image started as Spark starts an executor pod runs one, and it works.

    A driver container (images/pyspark/tests/executor_driver.py: a standalone master
    with no workers, so no executor can come from elsewhere) waits for an executor.
    A second container of the image gets what a Kubernetes driver gives an executor
    pod: the argument `executor`, the SPARK_* environment (JVM options as
    SPARK_JAVA_OPT_<n>), and the driver's conf directory as a read-only mount at
    SPARK_CONF_DIR=/opt/spark/conf; its root file system is read-only too, with a
    /tmp (emptyDir-like) for SPARK_LOCAL_DIRS. Proves: the entry point execs
    KubernetesExecutorBackend directly under tini (the JVM is PID 1's child, its
    arguments Spark's, the options in index order and each one argument, the
    memory from SPARK_EXECUTOR_MEMORY, the classpath the conf directory then
    pip's pyspark jars); no start hook runs and nothing is written to the conf
    directory; the executor registers with the driver, runs a JVM job and Python
    tasks (in /opt/venv/bin/python, inside the executor's container), and exits
    when the driver stops. The same round trip with a k8s:// driver creating
    executor pods is proven by the cluster suite.
    """
    image = tags["pyspark"]
    conf, handshake = tmp_path / "conf", tmp_path / "handshake"
    conf.mkdir(mode=0o755)
    handshake.mkdir(mode=0o755)
    (conf / "spark-defaults.conf").write_text(EXECUTOR_CONF)
    (conf / "spark-defaults.conf").chmod(0o644)
    driver_port, blockmanager_port, master_port, master_ui_port = (_free_port() for _ in range(4))
    suffix = uuid.uuid4().hex[:8]
    driver, executor = f"analysis-hub-spark-driver-{suffix}", f"analysis-hub-spark-exec-{suffix}"
    pod_name = f"analysis-hub-check-{suffix}-exec-1"
    try:
        docker(
            "run", "--detach", "--name", driver, "--network", "host",
            "--volume", f"{REPO / 'images'}:/images:ro", "--volume", f"{handshake}:/handshake:ro",
            "--env", "SPARK_DRIVER_HOST=127.0.0.1", "--env", "SPARK_DRIVER_BIND_ADDRESS=127.0.0.1",
            "--env", "SPARK_LOCAL_IP=127.0.0.1",
            "--env", f"SPARK_DRIVER_PORT={driver_port}",
            "--env", f"SPARK_BLOCKMANAGER_PORT={blockmanager_port}",
            "--env", f"MASTER_PORT={master_port}", "--env", f"MASTER_UI_PORT={master_ui_port}",
            "--env", "RELEASE_FILE=/handshake/release",
            image, "python", "/images/pyspark/tests/executor_driver.py",
        )  # fmt: skip
        ready = _json_line(driver, "ready", 180)
        executor_env = {
            "SPARK_DRIVER_URL": ready["driver_url"],
            "SPARK_EXECUTOR_ID": "1",
            "SPARK_EXECUTOR_CORES": "1",
            "SPARK_EXECUTOR_MEMORY": "512m",
            "SPARK_APPLICATION_ID": ready["app_id"],
            "SPARK_EXECUTOR_POD_IP": "127.0.0.1",
            "SPARK_EXECUTOR_POD_NAME": pod_name,
            "SPARK_RESOURCE_PROFILE_ID": "0",
            "SPARK_CONF_DIR": "/opt/spark/conf",
            "SPARK_LOCAL_DIRS": "/tmp/spark-local",
            # Spark numbers them from 0; ten sorts after two, and a value may hold spaces.
            "SPARK_JAVA_OPT_10": "-Danalysis.hub.order=10",
            "SPARK_JAVA_OPT_0": f"-Dspark.driver.port={driver_port}",
            "SPARK_JAVA_OPT_2": "-Danalysis.hub.order=2",
            "SPARK_JAVA_OPT_1": "-Danalysis.hub.marker=one two",
        }
        env_args = [arg for key, value in executor_env.items() for arg in ("--env", f"{key}={value}")]
        docker(
            "run", "--detach", "--name", executor, "--network", "host",
            "--read-only", "--tmpfs", "/tmp:rw,exec,mode=1777",
            "--volume", f"{conf}:/opt/spark/conf:ro", *env_args,
            image, "executor",
        )  # fmt: skip
        result = _json_line(driver, "result", 240)
        assert result["count"] == 100_000 and result["executors"] == 1, result
        assert result["python"] == [["/opt/venv/bin/python", "1", pod_name]], result

        # tini (PID 1) -> java, nothing in between: the pod's SIGTERM reaches the JVM.
        processes = docker("exec", executor, "ps", "-eo", "pid,ppid,comm", "--no-headers").stdout
        java_pid = next(line.split()[0] for line in processes.splitlines() if line.split()[2] == "java")
        assert ["1", "java"] in [line.split()[1:] for line in processes.splitlines()], processes
        cmdline = docker("exec", executor, "cat", f"/proc/{java_pid}/cmdline").stdout.split("\0")[:-1]
        java_opts = [f"-Dspark.driver.port={driver_port}", "-Danalysis.hub.marker=one two"]
        java_opts += ["-Danalysis.hub.order=2", "-Danalysis.hub.order=10"]
        assert cmdline == [
            "/usr/lib/jvm/java-17-openjdk-amd64/bin/java",
            *java_opts,
            "-Xms512m",
            "-Xmx512m",
            "-cp",
            "/opt/spark/conf:/etc/hadoop/conf:/opt/venv/lib/python3.11/site-packages/pyspark/jars/*",
            "org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend",
            *("--driver-url", ready["driver_url"], "--executor-id", "1", "--cores", "1"),
            *("--app-id", ready["app_id"], "--hostname", "127.0.0.1", "--resourceProfileId", "0"),
            *("--podName", pod_name),
        ], cmdline

        (handshake / "release").touch()
        assert _json_line(driver, "stopped", 120)
        assert docker("wait", driver, timeout=120).stdout.strip() == "0"
        exit_code = docker("wait", executor, timeout=120).stdout.strip()
        logs = docker("logs", executor).stderr
        print(f"{executor}:\n{logs[:2500]}\n...\n{logs[-1000:]}")
        assert "start.sh" not in logs, "an executor must run none of the notebook's start hooks"
        assert "pyspark executor: exec " in logs and "Successfully registered with driver" in logs, logs
        assert "Driver commanded a shutdown" in logs and exit_code == "0", (exit_code, logs[-3000:])
        assert sorted(p.name for p in conf.iterdir()) == ["spark-defaults.conf"]
        assert (conf / "spark-defaults.conf").read_text() == EXECUTOR_CONF
    finally:
        docker("rm", "--force", driver, executor, check=False)


def test_pyspark_client_mode_hook_writes_the_kubernetes_executor_settings(tags):
    """On Kubernetes the start hook points executors at this image, pulled only if absent
    (images imported without a registry), run as the Spark service account, owned by this pod."""
    env = {
        "SPARK_KUBERNETES_EXECUTORS": "true",
        "SPARK_KUBERNETES_SERVICE_ACCOUNT": "analysis-hub-spark",
        "SPARK_KUBERNETES_NAMESPACE": "analysis-hub",
        "JUPYTER_IMAGE": "analysis-hub/pyspark:check",
        "KUBERNETES_SERVICE_HOST": "10.96.0.1",
        "KUBERNETES_SERVICE_PORT": "443",
    }
    env_args = [arg for key, value in env.items() for arg in ("--env", f"{key}={value}")]
    written = docker(
        "run", "--rm", "--hostname", "jupyter-alice", *env_args, tags["pyspark"],
        "bash", "-c", 'cat "$SPARK_CONF_DIR/spark-defaults.conf"',
    ).stdout  # fmt: skip
    settings = dict(line.split(None, 1) for line in written.splitlines() if line and not line.startswith("#"))
    assert settings["spark.master"] == "k8s://https://10.96.0.1:443", written
    assert settings["spark.kubernetes.namespace"] == "analysis-hub"
    assert settings["spark.kubernetes.container.image"] == "analysis-hub/pyspark:check"
    assert settings["spark.kubernetes.container.image.pullPolicy"] == "IfNotPresent"
    assert settings["spark.kubernetes.authenticate.executor.serviceAccountName"] == "analysis-hub-spark"
    assert settings["spark.kubernetes.driver.pod.name"] == "jupyter-alice"


def _gpu_args() -> list[str]:
    return ["--gpus", "all", "--env", "EXPECT_GPU=1"] if EXPECT_GPU else []


def test_pytorch_trains_a_step_and_reports_the_gpu(tags):
    cuda_build = os.environ.get("ANALYSIS_HUB_TEST_TORCH") != "cpu"
    report = run_in_image(
        tags["pytorch"],
        "pytorch/tests/test_torch.py",
        *_gpu_args(),
        "--env",
        f"EXPECT_CUDA_BUILD={int(cuda_build)}",
    )
    assert report["gpu_visible"] == EXPECT_GPU or not EXPECT_GPU
    assert report["loss"][1] < report["loss"][0]


def test_tensorflow_trains_a_step_and_reports_the_gpu(tags):
    report = run_in_image(tags["tensorflow"], "tensorflow/tests/test_tensorflow.py", *_gpu_args())
    assert report["built_with_cuda"], "the TensorFlow wheel should be a CUDA-capable build"
    assert report["loss"][1] < report["loss"][0]


def test_hub_image_carries_the_package_and_pinned_hub_components(tags):
    """Also what the chart's pipelines Deployment runs from it: git, which keeps teams' versions,
    committing and reading one back as the image's user (issue 24: the service answered 500
    "No such file or directory: 'git'")."""
    report = run_in_image(tags["hub"], "hub/tests/test_hub.py")
    assert report["jupyterhub"] == "6.1.1"
    assert set(report["profiles"]) >= set(NOTEBOOK_IMAGES)
    assert report["git"].startswith("git version "), report
    assert report["pipelines_repository"] == "committed"


class _StubHub(BaseHTTPRequestHandler):
    """Just enough of the hub's API for jupyterhub-singleuser to start."""

    def do_GET(self):
        body = json.dumps({"version": "6.1.1"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-JupyterHub-Version", "6.1.1")
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args):
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("image", NOTEBOOK_IMAGES)
def test_jupyterhub_singleuser_serves_as_uid_1000(tags, image):
    hub = ThreadingHTTPServer(("127.0.0.1", 0), _StubHub)
    threading.Thread(target=hub.serve_forever, daemon=True).start()
    port, name = _free_port(), f"analysis-hub-smoke-{uuid.uuid4().hex[:8]}"
    prefix = "/user/smoke/"
    env = {
        "JUPYTERHUB_API_TOKEN": uuid.uuid4().hex,
        "JUPYTERHUB_CLIENT_ID": "jupyterhub-user-smoke",
        "JUPYTERHUB_API_URL": f"http://127.0.0.1:{hub.server_address[1]}/hub/api",
        "JUPYTERHUB_BASE_URL": "/",
        "JUPYTERHUB_SERVICE_PREFIX": prefix,
        "JUPYTERHUB_USER": "smoke",
        "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}{prefix}",
        "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{prefix}oauth_callback",
    }
    env_args = [arg for key, value in env.items() for arg in ("--env", f"{key}={value}")]
    # The image's own command (jupyterhub-singleuser); loopback of the host network only.
    docker("run", "--detach", "--name", name, "--network", "host", *env_args, tags[image])
    try:
        deadline, answer = time.monotonic() + 90, None
        while time.monotonic() < deadline and answer is None:
            with contextlib.suppress(requests.ConnectionError):
                response = requests.get(f"http://127.0.0.1:{port}{prefix}api", timeout=5)
                answer = response.json() if response.status_code == 200 else None
            time.sleep(0.5)
        assert answer and "version" in answer, docker("logs", name, check=False).stderr[-3000:]
        assert docker("exec", name, "id", "-u").stdout.strip() == "1000"
        processes = docker("top", name, "-eo", "pid,uid,args").stdout.splitlines()[1:]
        assert any("jupyterhub-singleuser" in line for line in processes), processes
        assert all(line.split()[1] == "1000" for line in processes), processes
    finally:
        docker("rm", "--force", name, check=False)
        hub.shutdown()
