"""The docker backend on a real engine: a container per user from the curated images.

A real hub (`analysis-hub up`, backend docker, culler timeout 20 s) spawns
users' servers through the REST API. Each profile runs code in its kernel,
inside a container that holds the profile's limits (read from the cgroup
file system inside), as uid 1000 without privileges; homes are named volumes
that users can't see across, survive culling, and come back on re-spawn.
The images are built first (tests/dockerengine.py; a no-op when up to date).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from conftest import start_hub
from kernels import CONTAINER_LIMITS, run_code

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dockerengine import TAGS_FILE, build_images, docker, hub_prefix, remove_hub_objects

pytestmark = pytest.mark.integration
TIMEOUT, EVERY = 20, 5
CULLED_WITHIN = TIMEOUT + 3 * EVERY + 20
GiB = 2**30

# Runs in the kernel: what the container enforces and who runs it (cgroup v1 and v2).
INSPECT = (
    CONTAINER_LIMITS
    + """
cpu = int(quota[0]) / int(period[0])
print(json.dumps({"memory": int(memory[0]), "cpus": cpu, "uid": os.getuid(), "home": os.environ["HOME"],
    "no_new_privs": status["NoNewPrivs"].strip(), "cap_eff": status["CapEff"].strip(),
    "profile": os.environ.get("ANALYSIS_HUB_PROFILE")}))
"""
)
WORK = {
    "pyspark": "from pyspark.sql import SparkSession\n"
    "print(SparkSession.builder.getOrCreate().range(1000).count())",
    "pytorch": "import torch\nprint(int(torch.arange(1, 11).sum()))",
    "tensorflow": "import tensorflow as tf\nprint(int(tf.reduce_sum(tf.range(1, 11))))",
}
EXPECTED = {"pyspark": "1000", "pytorch": "55", "tensorflow": "55"}
# Each profile's request, and its limits (cores, bytes) from profiles/*.yaml.
REQUESTS = {
    "pyspark": ({"profile": "pyspark"}, 2.0, 4 * GiB),
    "pytorch": ({"profile": "pytorch", "accelerator": "cpu"}, 2.0, 4 * GiB),
    "tensorflow": ({"profile": "tensorflow"}, 2.0, 6 * GiB),
}


@pytest.fixture(scope="module")
def tags():
    return build_images("pyspark", "pytorch", "tensorflow")


@pytest.fixture(scope="module")
def docker_hub(tags):
    running = start_hub(
        backend="docker",
        docker={"image_tags_file": str(TAGS_FILE)},
        culler={"enabled": True, "timeout": TIMEOUT, "every": EVERY},
    )
    yield running
    running.stop()
    remove_hub_objects(running)


def spawn(user, options: dict) -> None:
    response = user.start(options)
    assert response.status_code in (201, 202), response.text
    user.wait_ready(timeout=180)


def container_of(running, user) -> dict:
    name = f"{hub_prefix(running)}-{user.name}"
    return json.loads(docker("inspect", name).stdout)[0]


@pytest.mark.parametrize("profile", ["pyspark", "pytorch", "tensorflow"])
def test_each_profile_runs_in_its_container_within_its_limits(docker_hub, tags, profile):
    """The profile's image, --cpus and --memory seen from inside, uid 1000, no privileges, code runs."""
    options, cpus, memory = REQUESTS[profile]
    alice = docker_hub.user("alice")
    spawn(alice, options)
    try:
        container = container_of(docker_hub, alice)
        assert container["Config"]["Image"] == tags[profile]
        assert container["HostConfig"]["NetworkMode"] == f"{hub_prefix(docker_hub)}-net"
        assert container["HostConfig"]["AutoRemove"] is True
        facts = json.loads(run_code(alice, INSPECT, timeout=120).strip().splitlines()[-1])
        assert facts == {
            "memory": memory,
            "cpus": cpus,
            "uid": 1000,
            "home": "/home/jovyan",
            "no_new_privs": "1",
            "cap_eff": "0000000000000000",
            "profile": profile,
        }
        assert run_code(alice, WORK[profile], timeout=240).strip().splitlines()[-1] == EXPECTED[profile]
    finally:
        alice.stop()


def test_server_port_is_published_on_host_loopback_only(docker_hub):
    """The server listens in its container's own network namespace; its one published port is on
    the host's 127.0.0.1, where the hub reaches it; the container reaches the hub API on the
    gateway of the hub's network."""
    bob = docker_hub.user("bob")
    spawn(bob, {"profile": "tensorflow"})
    try:
        assert bob.model()["servers"][""]["url"] == f"/user/{bob.name}/"
        container = container_of(docker_hub, bob)
        ports = container["NetworkSettings"]["Ports"]
        assert list(ports) == ["8888/tcp"]
        [binding] = ports["8888/tcp"]
        assert binding["HostIp"] == "127.0.0.1"
        network = json.loads(docker("network", "inspect", f"{hub_prefix(docker_hub)}-net").stdout)[0]
        gateway = network["IPAM"]["Config"][0]["Gateway"]
        env = dict(e.split("=", 1) for e in container["Config"]["Env"])
        port = docker_hub.settings["hub"]["internal_port"]
        assert env["JUPYTERHUB_API_URL"] == f"http://{gateway}:{port}/hub/api"
        assert bob.server_api("/status").status_code == 200
    finally:
        bob.stop()


def test_gpu_profile_is_refused_on_a_machine_without_gpus(docker_hub):
    response = docker_hub.user("carol").start({"profile": "pytorch"})
    assert response.status_code == 400 and "GPU" in response.json()["message"]


def test_homes_are_private_and_survive_culling_and_respawn(docker_hub):
    """alice's file is in her volume only; culled, her container is gone and the volume stays;
    re-spawned, the file is back; bob's container mounts his own volume and can't see hers."""
    alice, bob = docker_hub.user("alice"), docker_hub.user("bob")
    spawn(alice, {"profile": "tensorflow"})
    run_code(alice, "open('/home/jovyan/kept.txt', 'w').write('alice was here')")
    alice_volume = container_of(docker_hub, alice)["Mounts"][0]["Name"]
    assert alice_volume == f"{hub_prefix(docker_hub)}-home-alice"

    spawn(bob, {"profile": "tensorflow"})
    try:
        mounts = container_of(docker_hub, bob)["Mounts"]
        assert [m.get("Name") for m in mounts] == [f"{hub_prefix(docker_hub)}-home-bob"]
        seen = run_code(bob, "import os; print(sorted(os.listdir('/home/jovyan')))")
        assert "kept.txt" not in seen
    finally:
        bob.stop()

    started = time.monotonic()
    while "" in alice.model()["servers"]:
        assert time.monotonic() - started < CULLED_WITHIN, "alice's idle server was not culled"
        time.sleep(1)
    name = f"{hub_prefix(docker_hub)}-alice"
    assert not docker("ps", "-aq", "--filter", f"name=^{name}$").stdout.strip(), "container not removed"
    assert docker("volume", "inspect", alice_volume, check=False).returncode == 0

    spawn(alice, {"profile": "pyspark"})
    try:
        assert run_code(alice, "print(open('/home/jovyan/kept.txt').read())").strip() == "alice was here"
    finally:
        alice.stop()


MISSING = "analysis-hub/tensorflow:absent"


def test_missing_image_is_reported_with_the_build_command(tags):
    running = start_hub(
        backend="docker",
        docker={
            "image_tags_file": str(TAGS_FILE),
            "images": {"tensorflow": "analysis-hub/tensorflow:absent"},
        },
        culler={"enabled": False},
    )
    try:
        carol = running.user("carol")
        response = carol.start({"profile": "tensorflow"})
        if response.status_code == 500:  # failed within the hub's slow-spawn wait
            message = response.json()["message"]
        else:
            events = carol.progress_events(timeout=60)
            message = " ".join(e.get("message", "") for e in events)
        assert f"{MISSING} is not on this machine" in message, message
        assert "python scripts/build_images.py tensorflow" in message
    finally:
        running.stop()
        remove_hub_objects(running)


def test_gpu_container_gets_a_memory_backed_dev_shm_sized_by_the_catalog_rule(tags):
    """A GPU profile's container has a tmpfs /dev/shm of half its memory limit, not Docker's 64 MiB
    (PyTorch's DataLoader workers die with "bus error" in that). The host settings are the docker
    translation's own, passed through docker-py's create_host_config as DockerSpawner does, on the
    network the translation names (created here); only the device request is left out, because
    this machine has no GPU to grant."""
    import docker as docker_sdk
    from analysis_hub.backends.docker.network import ensure_network
    from analysis_hub.backends.docker.translate import (
        DockerHostFacts,
        container_network,
        docker_server_settings,
    )
    from analysis_hub.catalog import load_catalog, resolve

    repo = Path(__file__).resolve().parents[2]
    catalog = load_catalog(repo / "profiles", repo / "images")
    resolved = resolve(catalog.get("pytorch"), {"accelerator": "gpu"})
    host = DockerHostFacts(images=tags, name_prefix="analysis-hub-shm-test", gpu_ids=("0",))
    settings = docker_server_settings(resolved, host)
    host_config = {k: v for k, v in settings.extra_host_config.items() if k != "device_requests"}
    client = docker_sdk.APIClient()
    network = ensure_network(client, container_network(host.name_prefix))
    try:
        container = client.create_container(
            settings.image,
            command=["df", "-B1", "--output=fstype,size", "/dev/shm"],
            host_config=client.create_host_config(**host_config, mem_limit=settings.mem_limit),
            **settings.extra_create_kwargs,
        )
        try:
            client.start(container)
            assert client.wait(container, timeout=120)["StatusCode"] == 0
            fstype, size = client.logs(container).decode().split()[-2:]
        finally:
            client.remove_container(container, force=True)
    finally:
        client.remove_network(network.name)
    assert fstype == "tmpfs"
    assert int(size) == resolved.resources.memory_limit // 2 == 8 * GiB
