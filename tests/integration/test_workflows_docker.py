"""Workflows on the docker backend, for real: each step in a container of its own image.

A hub on the docker backend (`analysis-hub up`) with the images `make images`
built (build/image-tags.json, the backend's default) runs the three-step
pyspark → tensorflow → pytorch workflow of test_workflows: the engine's own
create events show each step's container and image; the run folder is shared
by the steps' containers at one path. When those images predate the
step-outputs module (analysis_hub_outputs), the test is skipped, saying so:
building images takes a long time and is `make images`' job, not this test's.
"""

from __future__ import annotations

import json
import time

import pytest
from conftest import REPO, start_hub
from dockerengine import docker, hub_prefix, remove_hub_objects
from workflow_runs import (
    ACROSS_PROFILES,
    PREPARE,
    REPORT,
    TRAIN,
    publish_workflow,
    run_folder,
    start_run,
    steps_of,
    wait_run,
)

pytestmark = pytest.mark.integration

IMAGE_TAGS = REPO / "build" / "image-tags.json"  # what `make images` wrote; the docker backend's default


@pytest.fixture(scope="module")
def docker_hub():
    """A hub on the docker backend with the images `make images` built. Images built before the
    step-outputs module existed can't record outputs: then the test is skipped, saying so (building
    images takes a long time and is `make images`' job, not this test's)."""
    if not IMAGE_TAGS.exists():
        pytest.skip(f"{IMAGE_TAGS} is missing: run `make images`")
    tags = json.loads(IMAGE_TAGS.read_text())
    for image in ("pyspark", "tensorflow", "pytorch"):
        probe = ["run", "--rm", "--network", "none", "--entrypoint", "python", tags[image]]
        found = docker(*probe, "-c", "import analysis_hub_outputs", check=False, timeout=300)
        if found.returncode != 0:
            pytest.skip(f"{tags[image]} has no analysis_hub_outputs: rebuild it with `make images`")
    running = start_hub(backend="docker", docker={"image_tags_file": str(IMAGE_TAGS)})
    running.api = f"{running.url}/services/pipelines/api"
    yield running, tags
    running.stop()
    remove_hub_objects(running)


def test_on_docker_each_step_runs_in_a_container_of_its_own_image(docker_hub):
    """The three-step workflow on the docker backend: the same outputs and conditions, each step in
    a container of its profile's image (the kernel's display name is the image's), the run folder
    shared by the steps' containers at one path."""
    hub, tags = docker_hub
    alice, p = hub.user("alice"), "data-team/across-images"
    notebooks = {"prepare.ipynb": PREPARE, "train.ipynb": TRAIN, "report.ipynb": REPORT}
    publish_workflow(hub, alice, p, ACROSS_PROFILES, notebooks)
    since = int(time.time()) - 1
    run = wait_run(hub, alice, start_run(hub, alice, p))
    steps = steps_of(run)
    assert run["status"] == "succeeded", (run["reason"], steps)
    assert [steps[n]["status"] for n in ("prepare", "train", "report", "retrain")] == [
        "succeeded",
        "succeeded",
        "succeeded",
        "skipped",
    ]
    assert steps["prepare"]["outputs"] == {"rows": 40} and steps["train"]["outputs"]["rows_read"] == 40
    loss = steps["train"]["outputs"]["loss"]
    folder = run_folder(hub, run["id"])
    assert (folder / "report.txt").read_text() == f"40 rows, loss {loss}"
    assert (folder / "data.parquet" / "_SUCCESS").exists()
    inside = steps["report"]["outputs"]["report"]
    assert inside.endswith("/report.txt") and not inside.startswith(str(folder)), "mounted in the container"
    # The engine's own record of the containers it created for the run, and from which image.
    created = docker(
        "events",
        "--since",
        str(since),
        "--until",
        str(int(time.time()) + 1),
        "--filter",
        "type=container",
        "--filter",
        "event=create",
        "--format",
        "{{.Actor.Attributes.name}} {{.Actor.Attributes.image}}",
    ).stdout.split("\n")
    prefix = f"{hub_prefix(hub)}-run-{run['id']}-"
    images = dict(line[len(prefix) :].split() for line in created if line.startswith(prefix))
    assert images == {"prepare": tags["pyspark"], "train": tags["tensorflow"], "report": tags["pytorch"]}
    leftover = docker("ps", "-aq", "--filter", f"name={hub_prefix(hub)}-run-", check=False).stdout.split()
    assert leftover == [], "each step's container is removed"
