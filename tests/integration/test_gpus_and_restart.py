"""GPU servers get their own devices; servers and sessions survive a hub restart.

No GPU exists on these machines, so the hub sees a stand-in `nvidia-smi` on
its PATH that lists two GPUs (indices 0 and 1); everything else is real. The
GPU profile here uses the tensorflow image so that no CUDA runtime wheels
are downloaded for the test.
"""

from __future__ import annotations

import os
import shutil
import time

import pytest
import yaml
from conftest import REPO, make_workdir, start_hub
from kernels import run_code
from notebooks import make_notebook as notebook

pytestmark = pytest.mark.integration

FAKE_NVIDIA_SMI = "#!/bin/sh\n# stand-in: two GPUs\nprintf '0\\n1\\n'\n"
CUDA_DEVICES = "import os; print(repr(os.environ['CUDA_VISIBLE_DEVICES']))"


@pytest.fixture(scope="module")
def gpu_hub():
    workdir = make_workdir()
    catalog, bin_dir = workdir / "catalog", workdir / "bin"
    shutil.copytree(REPO / "profiles", catalog)
    (catalog / "gpu.yaml").write_text(
        yaml.safe_dump({"slug": "gpu", "display_name": "GPU", "image": "tensorflow", "gpus": 1})
    )
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text(FAKE_NVIDIA_SMI)
    (bin_dir / "nvidia-smi").chmod(0o755)

    running = start_hub(workdir, env={"PATH": f"{bin_dir}:{os.environ['PATH']}"}, catalog=str(catalog))
    yield running
    running.stop()


def test_each_gpu_server_gets_its_own_device_and_a_full_pool_is_refused(gpu_hub):
    """Two GPU servers see different CUDA_VISIBLE_DEVICES; a third waits for a free GPU."""
    alice, bob, carol = (gpu_hub.user(n) for n in ("alice", "bob", "carol"))
    for user in (alice, bob):
        assert user.start({"profile": "gpu"}).status_code in (201, 202)
        user.wait_ready()
    devices = {run_code(u, CUDA_DEVICES).strip() for u in (alice, bob)}
    assert devices == {"'0'", "'1'"}

    refused = carol.start({"profile": "gpu"})
    assert refused.status_code == 503, refused.text
    assert "all 2 GPUs are in use" in refused.json()["message"]
    assert carol.start({"profile": "tensorflow"}).status_code in (201, 202)
    carol.wait_ready()
    assert run_code(carol, CUDA_DEVICES).strip() == "''", "CPU profiles must not see the GPUs"
    carol.stop()

    alice.stop()
    assert carol.start({"profile": "gpu"}).status_code in (201, 202)
    carol.wait_ready()
    assert run_code(carol, CUDA_DEVICES).strip() == "'0'"
    carol.stop()


def test_servers_and_sessions_survive_a_hub_restart(gpu_hub):
    """After the hub restarts, a running server is still reachable and still holds its GPU."""
    bob, carol = gpu_hub.user("bob"), gpu_hub.user("carol")
    assert "" in bob.model()["servers"], "bob's GPU server from the previous test"
    server_pid = "import os; print(os.getppid())"  # a kernel's parent is the server
    pid_before = run_code(bob, server_pid).strip()

    gpu_hub.stop(servers_too=False)
    gpu_hub.start()

    assert bob.model()["servers"][""]["ready"]
    assert run_code(bob, server_pid).strip() == pid_before
    assert bob.session.get(f"{gpu_hub.url}/hub/home", allow_redirects=False).status_code == 200
    assert carol.start({"profile": "gpu"}).status_code in (201, 202)
    carol.wait_ready()
    assert run_code(carol, CUDA_DEVICES).strip() == "'0'", "bob's GPU 1 stays his after the restart"
    carol.stop()
    bob.stop()


def test_a_server_and_a_pipeline_run_take_gpus_from_one_pool(gpu_hub):
    """The hub's spawners and the pipelines service are two processes with one pool of the
    machine's GPUs (a locked file): a GPU run gets the GPU alice's server doesn't hold, in
    CUDA_VISIBLE_DEVICES; while it runs, bob's GPU server is refused; after it, bob gets it.
    (Stand-in nvidia-smi with two GPUs; no GPU exists here.)"""
    alice, bob = gpu_hub.user("alice"), gpu_hub.user("bob")
    api = f"{gpu_hub.url}/services/pipelines/api"
    assert alice.start({"profile": "gpu"}).status_code in (201, 202)
    alice.wait_ready()
    alices_gpu = run_code(alice, CUDA_DEVICES).strip()

    job = notebook(
        "import os, time\nprint('GPUS', repr(os.environ['CUDA_VISIBLE_DEVICES']))\ntime.sleep(seconds)",
        parameters="seconds = 15",
    )
    body = {"notebook": job, "profile": "gpu"}
    published = alice.api.post(f"{api}/pipelines/data-team/gpu-job/versions", json=body)
    assert published.status_code == 201, published.text
    assert alice.api.put(f"{api}/pipelines/data-team/gpu-job/deployment", json={}).status_code == 200
    run = alice.api.post(f"{api}/pipelines/data-team/gpu-job/runs", json={}).json()

    pool = gpu_hub.workdir / "data" / "gpus.json"  # Settings.gpu_state_file
    deadline = time.monotonic() + 300
    while f"run/{run['id']}" not in (pool.read_text() if pool.exists() else ""):
        assert time.monotonic() < deadline, "the run never took a GPU from the pool"
        time.sleep(0.2)
    refused = bob.start({"profile": "gpu"})
    assert refused.status_code == 503, refused.text
    assert "all 2 GPUs are in use" in refused.json()["message"]

    while not (finished := alice.api.get(f"{api}/runs/{run['id']}").json())["finished"]:
        assert time.monotonic() < deadline, "the GPU run did not finish"
        time.sleep(0.5)
    assert finished["status"] == "succeeded", finished
    output = alice.api.get(f"{api}/runs/{run['id']}/output").text
    runs_gpu = "'1'" if alices_gpu == "'0'" else "'0'"
    assert f"GPUS {runs_gpu}" in output, output[-2000:]
    assert f"run/{run['id']}" not in pool.read_text(), "the run's GPU went back to the pool"

    assert bob.start({"profile": "gpu"}).status_code in (201, 202)
    bob.wait_ready()
    assert run_code(bob, CUDA_DEVICES).strip() == runs_gpu
    bob.stop()
    alice.stop()
