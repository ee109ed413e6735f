"""Team folders on the docker backend, on a real engine: a named volume per team, mounted only for members.

Promises: alice (data-team) writes ~/teams/data-team/x.csv in her container
and carol (data-team) reads it from hers; bob (gpu-team) has no such folder:
his container mounts only gpu-team's volume, read-only as the team is
flagged, and code in his kernel finds nothing to list or read. After an
admin adds bob to data-team through the REST API and he respawns, he reads
the file. A data-team pipeline run (a container of its own) reads the same
file at the same path. The kernel is named after the image (no image
rebuilt for it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import REPO, start_hub
from kernels import run_code
from notebooks import make_notebook

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dockerengine import TAGS_FILE, build_images
from test_docker_backend import container_of, hub_prefix, remove_hub_objects, spawn

pytestmark = pytest.mark.integration
PROFILE = {"profile": "tensorflow"}
WRITE = "open('/home/jovyan/teams/data-team/x.csv', 'w').write('a,b\\n1,2\\n')"
READ = "print(open('/home/jovyan/teams/data-team/x.csv').read())"
PROBE = """
import json, os
outcome = {'teams': sorted(os.listdir('/home/jovyan/teams'))}
try:
    open('/home/jovyan/teams/data-team/x.csv').read()
    outcome['read'] = 'allowed'
except FileNotFoundError:
    outcome['read'] = 'no such file'
try:
    open('/home/jovyan/teams/gpu-team/y.txt', 'w').write('no')
    outcome['write_read_only'] = 'allowed'
except OSError as e:
    outcome['write_read_only'] = e.strerror
print(json.dumps(outcome))
"""


@pytest.fixture(scope="module")
def docker_teams_hub():
    build_images("tensorflow")
    running = start_hub(
        backend="docker",
        docker={"image_tags_file": str(TAGS_FILE)},
        auth={
            "admins": ["admin"],
            "users": ["alice", "bob", "carol"],
            "groups": {"data-team": ["alice", "carol"], "gpu-team": ["bob"]},
        },
        teams={"data-team": {}, "gpu-team": {"read_only": True}},
        culler={"enabled": False},
    )
    yield running
    running.stop()
    remove_hub_objects(running)


def team_volumes(running, user) -> dict[str, dict]:
    prefix = hub_prefix(running) + "-team-"
    return {
        m["Name"][len(prefix) :]: {"at": m["Destination"], "rw": m["RW"]}
        for m in container_of(running, user)["Mounts"]
        if m.get("Name", "").startswith(prefix)
    }


def test_members_share_a_team_volume_and_others_have_none(docker_teams_hub):
    """Members' containers mount the team's volume; bob's has only gpu-team's (read-only) until he
    is added to data-team and respawns. The kernel shows the image's display name."""
    alice, carol, bob = (docker_teams_hub.user(name) for name in ("alice", "carol", "bob"))
    for user in (alice, carol, bob):
        spawn(user, PROFILE)
    try:
        kernelspecs = alice.server_api("/kernelspecs").json()["kernelspecs"]
        assert kernelspecs["python3"]["spec"]["display_name"] == "TensorFlow"
        run_code(alice, WRITE)
        assert run_code(carol, READ) == "a,b\n1,2\n\n"
        assert team_volumes(docker_teams_hub, carol) == {
            "data-team": {"at": "/home/jovyan/teams/data-team", "rw": True}
        }
        assert team_volumes(docker_teams_hub, bob) == {
            "gpu-team": {"at": "/home/jovyan/teams/gpu-team", "rw": False}
        }
        assert json.loads(run_code(bob, PROBE)) == {
            "teams": ["gpu-team"],
            "read": "no such file",
            "write_read_only": "Read-only file system",
        }
        bob.stop()

        admin = docker_teams_hub.user("admin")
        r = admin.api.post(admin.url("/groups/data-team/users"), json={"users": ["bob"]})
        assert r.status_code == 200, r.text
        spawn(bob, PROFILE)
        assert run_code(bob, READ) == "a,b\n1,2\n\n"
    finally:
        for user in (alice, carol, bob):
            if "" in user.model()["servers"]:
                user.stop()


def test_a_teams_pipeline_run_reads_the_team_volume_at_the_same_path(docker_teams_hub, tmp_path):
    """What alice wrote in her server, a data-team run reads at ~/teams/data-team in its container."""
    alice = docker_teams_hub.user("alice")
    spawn(alice, PROFILE)
    try:
        run_code(alice, "open('/home/jovyan/teams/data-team/runs.csv', 'w').write('7')")
    finally:
        alice.stop()
    reader = make_notebook("import os\nprint(open(os.path.expanduser('~/teams/data-team/runs.csv')).read())")
    reader["metadata"]["kernelspec"]["display_name"] = "TensorFlow"
    path = tmp_path / "reader.ipynb"
    path.write_text(json.dumps(reader))
    env = {
        **os.environ,
        "ANALYSIS_HUB_PIPELINES_URL": f"{docker_teams_hub.url}/services/pipelines/",
        "JUPYTERHUB_API_TOKEN": alice.token,
    }
    cli = [sys.executable, "-m", "analysis_hub.cli", "pipelines"]
    for args in (
        ["publish", str(path), "--team", "data-team", "--deploy"],  # the kernel names the profile
        ["run", "data-team/reader", "--wait"],
    ):
        result = subprocess.run([*cli, *args], env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
        assert result.returncode == 0, result.stdout + result.stderr
    assert "succeeded" in result.stdout, result.stdout
    api = f"{docker_teams_hub.url}/services/pipelines/api"
    [run] = alice.api.get(f"{api}/pipelines/data-team/reader/runs").json()
    output = nbformat.reads(alice.api.get(f"{api}/runs/{run['id']}/output").text, as_version=4)
    assert "".join(o.get("text", "") for c in output.cells for o in c.get("outputs", [])).strip() == "7"
