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
from conftest import REPO
from dockerengine import docker, hub_prefix, remove_hub_objects
from workflow_runs import (
    ACROSS_PROFILES,
    FIRST,
    PREPARE,
    REPORT,
    SHIP,
    TRAIN,
    api,
    publish_workflow,
    run_folder,
    start_run,
    start_workflows_hub,
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
    running = start_workflows_hub(backend="docker", docker={"image_tags_file": str(IMAGE_TAGS)})
    yield running, tags
    running.stop()
    remove_hub_objects(running)


def created_containers(hub, run_id: int, since: int) -> dict[str, str]:
    """The engine's own record of the containers it created for the run's steps: step -> image."""
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
    prefix = f"{hub_prefix(hub)}-run-{run_id}-"
    return dict(line[len(prefix) :].split() for line in created if line.startswith(prefix))


def test_on_docker_each_step_runs_in_a_container_of_its_own_image(docker_hub):
    """The three-step workflow on the docker backend: the same outputs and conditions, each step in
    a container of its profile's image (as the engine's create events name them), the run folder
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
    images = created_containers(hub, run["id"], since)
    assert images == {"prepare": tags["pyspark"], "train": tags["tensorflow"], "report": tags["pytorch"]}
    leftover = docker("ps", "-aq", "--filter", f"name={hub_prefix(hub)}-run-", check=False).stdout.split()
    assert leftover == [], "each step's container is removed"


def test_on_docker_a_run_waiting_at_a_gate_holds_no_container(docker_hub):
    """The first step ran in a container of its own; at the gate the run is `waiting` and no
    container of the run exists; carol (ml-leads) approves and the step after the gate runs in a
    container of its own image, with the first step's output."""
    hub, tags = docker_hub
    alice, carol, p = hub.user("alice"), hub.user("carol"), "data-team/gated-on-docker"
    spec = {
        "steps": [
            {"name": "first", "notebook": "first.ipynb", "profile": "pyspark"},
            {"name": "review", "kind": "approval", "approvers": "ml-leads", "depends_on": ["first"]},
            {"name": "ship", "notebook": "ship.ipynb", "profile": "tensorflow", "depends_on": ["review"]},
        ]
    }
    publish_workflow(hub, alice, p, spec, {"first.ipynb": FIRST, "ship.ipynb": SHIP})
    since = int(time.time()) - 1
    run_id = start_run(hub, alice, p)
    waiting = wait_run(hub, alice, run_id, until=lambda r: r["finished"] or r["status"] == "waiting")
    assert waiting["status"] == "waiting", waiting
    assert created_containers(hub, run_id, since) == {"first": tags["pyspark"]}
    name = f"{hub_prefix(hub)}-run-{run_id}"
    assert docker("ps", "-aq", "--filter", f"name={name}").stdout.split() == [], "no container at the gate"
    decided = api(hub, carol, "POST", f"runs/{run_id}/steps/review/approve", json={"comment": "ok"})
    assert decided.status_code == 200, decided.text
    run = wait_run(hub, alice, run_id)
    assert run["status"] == "succeeded", run
    assert steps_of(run)["ship"]["outputs"] == {"shipped": 7}
    assert created_containers(hub, run_id, since) == {"first": tags["pyspark"], "ship": tags["tensorflow"]}
