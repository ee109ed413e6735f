"""Team folders on the local backend, as root with a Unix user per hub user.

Promises: every member of a hub group with a team folder finds it at
`~/teams/<team>` in their server, read-write (read-only where the team is
flagged); a non-member's processes can neither list nor read it; membership
follows the hub's groups at each spawn (an admin adds bob to data-team
through the REST API, bob respawns and reads the file); a team's pipeline
runs see the team's folder at the same path. Everything is checked with
code running in the users' own kernels and runs, as their Unix users.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import nbformat
import pytest
from conftest import REPO, start_hub
from kernels import run_code
from notebooks import make_notebook

pytestmark = pytest.mark.integration

PROFILE = {"profile": "pytorch", "accelerator": "cpu"}
WRITE = """
import os
path = os.path.expanduser('~/teams/data-team/x.csv')
with open(path, 'w') as f:
    f.write('a,b\\n1,2\\n')
print(path)
"""
FOLDER = "~/teams/data-team"
READ = f"import os; print(open(os.path.expanduser({FOLDER!r} + '/x.csv')).read())"
# What a non-member can do: each attempt through the folder's real path, as the server's Unix user.
PROBE = """
import json, os
folder = {folder!r}
outcome = {{'link': os.path.lexists(os.path.expanduser('~/teams/data-team'))}}
for name, attempt in (('list_teams', lambda: os.listdir(os.path.dirname(folder))),
                      ('list', lambda: os.listdir(folder)),
                      ('read', lambda: open(folder + '/x.csv').read())):
    try:
        attempt()
        outcome[name] = 'allowed'
    except PermissionError:
        outcome[name] = 'denied'
print(json.dumps(outcome))
"""
WRITE_READ_ONLY = """
import os
try:
    open(os.path.expanduser('~/teams/gpu-team/y.txt'), 'w').write('no')
    print('written')
except PermissionError:
    print('denied', sorted(os.listdir(os.path.expanduser('~/teams'))))
"""


@pytest.fixture(scope="module")
def teams_hub():
    running = start_hub(
        auth={
            "admins": ["admin"],
            "users": ["alice", "bob", "carol"],
            "groups": {"data-team": ["alice", "carol"], "gpu-team": ["bob"]},
        },
        teams={"data-team": {}, "gpu-team": {"read_only": True}},
    )
    yield running
    running.stop()


def started(user):
    assert user.start(PROFILE).status_code in (201, 202)
    user.wait_ready()
    return user


def test_members_share_the_team_folder_and_others_cannot_reach_it(teams_hub):
    """alice writes ~/teams/data-team/x.csv, carol (data-team) reads and changes it, bob (gpu-team)
    can't list or read it; once an admin adds bob to data-team and he respawns, he reads it.
    The kernel alice's server offers is named after its image."""
    alice, carol, bob = (started(teams_hub.user(name)) for name in ("alice", "carol", "bob"))
    try:
        # The launcher's kernel is named after the profile's image (images/pytorch/image.yaml).
        kernelspecs = alice.server_api("/kernelspecs").json()["kernelspecs"]
        assert kernelspecs["python3"]["spec"]["display_name"] == "PyTorch (CUDA)"
        written = run_code(alice, WRITE).strip()
        folder = run_code(
            alice, "import os; print(os.path.realpath(os.path.expanduser('~/teams/data-team')))"
        )
        folder = folder.strip()
        assert written.endswith("/teams/data-team/x.csv")
        assert run_code(carol, READ) == "a,b\n1,2\n\n"
        # The file alice made is the team's to change, not only to read.
        run_code(
            carol, "open(__import__('os').path.expanduser('~/teams/data-team/x.csv'), 'a').write('3,4\\n')"
        )
        assert json.loads(run_code(bob, PROBE.format(folder=folder))) == {
            "link": False,
            "list_teams": "denied",
            "list": "denied",
            "read": "denied",
        }
        # gpu-team's folder is read-only for its members.
        assert run_code(bob, WRITE_READ_ONLY).strip() == "denied ['gpu-team']"
        bob.stop()

        admin = teams_hub.user("admin")
        r = admin.api.post(admin.url("/groups/data-team/users"), json={"users": ["bob"]})
        assert r.status_code == 200, r.text
        started(bob)
        assert run_code(bob, READ) == "a,b\n1,2\n3,4\n\n"
        assert json.loads(run_code(bob, PROBE.format(folder=folder)))["list"] == "allowed"
    finally:
        for user in (alice, carol, bob):
            if "" in user.model()["servers"]:
                user.stop()


def test_a_member_removed_from_the_group_loses_the_folder_at_next_spawn(teams_hub):
    """Removing carol from data-team (REST API) takes her out of the team's Unix group at her next
    spawn: no link, and the folder denies her processes."""
    admin = teams_hub.user("admin")
    r = admin.api.delete(admin.url("/groups/data-team/users"), json={"users": ["carol"]})
    assert r.status_code == 200, r.text
    carol = started(teams_hub.user("carol"))
    try:
        folder = str(teams_hub.workdir / "data" / "teams" / "data-team")
        outcome = json.loads(run_code(carol, PROBE.format(folder=folder)))
    finally:
        carol.stop()
    assert outcome == {"link": False, "list_teams": "denied", "list": "denied", "read": "denied"}


def cli(hub, user, *args: str) -> str:
    env = {
        **os.environ,
        "ANALYSIS_HUB_PIPELINES_URL": f"{hub.url}/services/pipelines/",
        "JUPYTERHUB_API_TOKEN": user.token,
    }
    command = [sys.executable, "-m", "analysis_hub.cli", "pipelines", *args]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def printed_by_run(hub, user, team: str, pipeline: str) -> str:
    [run] = user.api.get(f"{hub.url}/services/pipelines/api/pipelines/{team}/{pipeline}/runs").json()
    output = user.api.get(f"{hub.url}/services/pipelines/api/runs/{run['id']}/output").text
    cells = nbformat.reads(output, as_version=4).cells
    return "".join(o.get("text", "") for c in cells for o in c.get("outputs", []))


def test_a_teams_pipeline_run_sees_the_team_folder_at_the_same_path(teams_hub, tmp_path):
    """A notebook reading ~/teams/data-team/runs.csv in alice's server runs unchanged as a data-team
    pipeline (its kernelspec names the image, as JupyterLab now records it); a gpu-team run has no
    ~/teams/data-team and is denied the folder itself."""
    alice, bob = teams_hub.user("alice"), teams_hub.user("bob")
    started(alice)
    try:
        run_code(alice, "import os; open(os.path.expanduser('~/teams/data-team/runs.csv'), 'w').write('7')")
    finally:
        alice.stop()
    reader = make_notebook("import os\nprint(open(os.path.expanduser('~/teams/data-team/runs.csv')).read())")
    reader["metadata"]["kernelspec"]["display_name"] = "PyTorch (CUDA)"
    path = tmp_path / "reader.ipynb"
    path.write_text(json.dumps(reader))
    publish = ["--choice", "accelerator=cpu", "--deploy"]
    # No --profile: the notebook's kernel (PyTorch (CUDA)) names the profile it was written in.
    cli(teams_hub, alice, "publish", str(path), "--team", "data-team", *publish)
    assert "succeeded" in cli(teams_hub, alice, "run", "data-team/reader", "--wait")
    assert printed_by_run(teams_hub, alice, "data-team", "reader").strip() == "7"
    versions = alice.api.get(f"{teams_hub.url}/services/pipelines/api/pipelines/data-team/reader").json()
    assert versions["versions"][0]["profile"] == "pytorch"

    folder = teams_hub.workdir / "data" / "teams" / "data-team"
    snoop = make_notebook(
        "import os\n"
        "home = os.path.expanduser('~')\n"
        "print(os.path.lexists(home + '/teams/data-team'), os.listdir(home + '/teams'))\n"
        f"try:\n    os.listdir({str(folder)!r})\nexcept PermissionError:\n    print('denied')"
    )
    path = tmp_path / "snoop.ipynb"
    path.write_text(json.dumps(snoop))
    cli(teams_hub, bob, "publish", str(path), "--team", "gpu-team", "--profile", "pytorch", *publish)
    assert "succeeded" in cli(teams_hub, bob, "run", "gpu-team/snoop", "--wait")
    assert printed_by_run(teams_hub, bob, "gpu-team", "snoop").split("\n")[:2] == [
        "False ['gpu-team']",
        "denied",
    ]
