"""Named servers on the docker backend, on a real engine: one container per server, one home.

A real hub (`analysis-hub up`, backend docker) starts two of alice's named servers from the
images already built (`make images`; their tags in the test root's image-tags.json): each is
its own container, both mount alice's one home volume, and a file written in one is read in
the other. The culler is off here; culling named servers is test_named_servers.py's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from harness import start_hub
from kernels import run_code

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dockerengine import TAGS_FILE, docker, hub_prefix, remove_hub_objects

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def docker_hub():
    tags = json.loads(TAGS_FILE.read_text())
    for name in ("pyspark", "tensorflow"):
        docker("image", "inspect", tags[name])  # built by `make images`; not rebuilt here
    running = start_hub(
        backend="docker", docker={"image_tags_file": str(TAGS_FILE)}, culler={"enabled": False}
    )
    yield running
    running.stop()
    remove_hub_objects(running)


def test_named_servers_are_containers_of_their_own_on_one_home_volume(docker_hub):
    """alice's pyspark server 'prep' and tensorflow server 'tf' run at once, each in its own
    container from its own image, both on alice's home volume: what one writes, the other reads."""
    alice = docker_hub.user("alice")
    for server, profile in (("prep", "pyspark"), ("tf", "tensorflow")):
        started = alice.start({"profile": profile}, server=server)
        assert started.status_code in (201, 202), started.text
    for server in ("prep", "tf"):
        alice.wait_ready(server=server, timeout=300)
    prefix = hub_prefix(docker_hub)
    containers = {
        server: json.loads(docker("inspect", f"{prefix}-alice--{server}").stdout)[0]
        for server in ("prep", "tf")
    }
    tags = json.loads(TAGS_FILE.read_text())
    assert containers["prep"]["Config"]["Image"] == tags["pyspark"]
    assert containers["tf"]["Config"]["Image"] == tags["tensorflow"]
    for container in containers.values():
        assert [m.get("Name") for m in container["Mounts"] if m["Destination"] == "/home/jovyan"] == [
            f"{prefix}-home-alice"
        ]
    run_code(alice, "open('/home/jovyan/from-tf.txt', 'w').write('one home')", server="tf", timeout=120)
    assert (
        run_code(alice, "print(open('/home/jovyan/from-tf.txt').read())", server="prep").strip() == "one home"
    )
