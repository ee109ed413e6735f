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
    report = run_in_image(tags["hub"], "hub/tests/test_hub.py")
    assert report["jupyterhub"] == "6.1.1"
    assert set(report["profiles"]) >= set(NOTEBOOK_IMAGES)


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
