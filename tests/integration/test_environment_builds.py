"""First use of an image builds its environment, with progress on the spawn page;
concurrent spawns share one build; a failed build is reported and never reused.

The hub serves two extra test images next to the repository's: `plain`, whose
lock file is the pyspark lock without Spark and its data libraries (a real
Jupyter environment, built in under a minute from pip's cache), and `broken`,
whose lock names a package that does not exist. Each test run gets a fresh
environment folder, so `plain` is always a first build.
"""

from __future__ import annotations

import shutil
import threading
import uuid

import pytest
import yaml
from conftest import REPO, make_workdir, start_hub

pytestmark = pytest.mark.integration

HEAVY = ("pyspark==", "py4j==", "pandas==", "pyarrow==", "numpy==", "tzdata==")


@pytest.fixture(scope="module")
def build_hub():
    workdir = make_workdir()
    images, catalog = workdir / "images", workdir / "catalog"
    shutil.copytree(REPO / "images", images)
    shutil.copytree(REPO / "profiles", catalog)
    lock = (REPO / "images/pyspark/requirements.txt").read_text().splitlines()
    (images / "plain").mkdir()
    (images / "plain/requirements.txt").write_text(
        f"# test image {uuid.uuid4()}\n"
        + "\n".join(line for line in lock if not line.startswith(HEAVY))
        + "\n"
    )
    (images / "broken").mkdir()
    (images / "broken/requirements.txt").write_text("analysis-hub-no-such-package==0.0.1\n")
    for slug in ("plain", "broken"):
        # A notebook image is a folder with an image.yaml (analysis_hub.images); these need no capability.
        (images / slug / "image.yaml").write_text(f"display_name: {slug.title()}\n")
        (catalog / f"{slug}.yaml").write_text(
            yaml.safe_dump({"slug": slug, "display_name": slug.title(), "image": slug})
        )
    running = start_hub(
        workdir, catalog=str(catalog), images_dir=str(images), local={"envs_dir": str(workdir / "envs")}
    )
    running.envs = workdir / "envs"
    yield running
    running.stop()


def test_first_spawn_builds_the_environment_once_with_progress(build_hub):
    """Two users spawning an unbuilt image wait for one build, and the spawn page shows it."""
    alice, bob = build_hub.user("alice"), build_hub.user("bob")
    responses = {}

    def spawn(user):
        responses[user.name] = user.start({"profile": "plain"})

    threads = [threading.Thread(target=spawn, args=(u,)) for u in (alice, bob)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {r.status_code for r in responses.values()} == {202}, "a first build outlasts the 10 s reply"
    # Follow both spawn pages at once: whichever user wins the race shows the build.
    streams = {}
    followers = [
        threading.Thread(target=lambda u=u: streams.__setitem__(u.name, u.progress_events()))
        for u in (alice, bob)
    ]
    for t in followers:
        t.start()
    for t in followers:
        t.join()
    events, bob_events = streams["alice"], streams["bob"]
    try:
        messages = [e.get("message", "") for e in events + bob_events]
        assert events[-1].get("ready") and bob_events[-1].get("ready"), messages
        # Phases and counts, not pip's lines.
        assert any(m.startswith("Fetching packages: 1 of ") for m in messages), messages
        assert not any(m.startswith(("Collecting", "Processing", "Installing collected")) for m in messages)
        assert sum("Building the plain environment" in m for m in messages) == 1, messages
        assert any(m.startswith("Waiting for the plain environment") for m in messages), messages
        assert any(m.startswith("Built the plain environment") for m in messages), messages
        assert build_hub.log().count("Building the plain environment from") == 1
        assert len(list(build_hub.envs.glob("plain-*/.analysis-hub-ready"))) == 1
    finally:
        alice.stop()
        bob.stop()


def test_failed_build_is_reported_and_not_reused(build_hub):
    """A lock file pip can't install fails the spawn with pip's reason, twice: nothing half-built is used."""
    carol = build_hub.user("carol")
    for _ in range(2):
        response = carol.start({"profile": "broken"})
        assert response.status_code == 500, response.text
        message = response.json()["message"]
        assert "Could not build the broken environment" in message
        assert "analysis-hub-no-such-package" in message
        assert "" not in carol.model()["servers"]
    assert not list(build_hub.envs.glob("broken-*/.analysis-hub-ready"))
    assert build_hub.log().count("Building the broken environment from") == 2
