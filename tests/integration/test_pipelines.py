"""Pipelines, for real: the hub-managed service, papermill runs, a cron schedule, webhooks.

One hub (started with `analysis-hub up`, so the pipelines service is started
by JupyterHub) serves a catalog copy with a `tiny` profile (pyspark's image,
a 400 MiB memory limit) for the out-of-memory case. alice is in data-team,
bob in gpu-team, admin is an admin. The CLI is the real `analysis-hub
pipelines` command, run as a subprocess with alice's hub token. Each test
makes the pipelines it needs (its own names, or the module's `data_team_run`),
so the tests pass in any order; the hub is shared by the module.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import requests
import yaml
from conftest import REPO, make_workdir, start_hub
from harness import widen_idle_timeouts
from kernels import run_code
from notebooks import make_notebook as notebook
from webhooks import receive_webhooks

pytestmark = pytest.mark.integration

CULL_TIMEOUT = 15
CLI = [sys.executable, "-m", "analysis_hub.cli", "pipelines"]


V1 = notebook("print(greeting * n)")
V2 = notebook("print('before the error')", "1/0", "print('never')")


@pytest.fixture
def webhooks():
    """A webhook receiver on loopback: (its URL, the JSON bodies it received)."""
    with receive_webhooks() as hook:
        yield hook


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    workdir = make_workdir()
    catalog = workdir / "catalog"
    shutil.copytree(REPO / "profiles", catalog)
    tiny = {
        "slug": "tiny",
        "display_name": "Tiny",
        "image": "pyspark",
        "memory": {"limit": "400Mi"},
        "cpu": {"limit": 1},
        "allowed_groups": ["data-team"],
    }
    (catalog / "tiny.yaml").write_text(yaml.safe_dump(tiny))
    pytorch = yaml.safe_load((catalog / "pytorch.yaml").read_text())
    pytorch["allowed_groups"] = ["gpu-team"]
    (catalog / "pytorch.yaml").write_text(yaml.safe_dump(pytorch))
    # pyspark servers idle for 30 minutes by default; the culling test chooses CULL_TIMEOUT.
    widen_idle_timeouts(catalog, "pyspark", CULL_TIMEOUT)
    running = start_hub(
        workdir,
        catalog=str(catalog),
        culler={"enabled": True, "timeout": CULL_TIMEOUT, "every": 5},
    )
    running.api = f"{running.url}/services/pipelines/api"
    yield running
    running.stop()


def cli(hub, user, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "ANALYSIS_HUB_PIPELINES_URL": f"{hub.url}/services/pipelines/",
        "JUPYTERHUB_API_TOKEN": user.token,
    }
    result = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def api(hub, user, method: str, path: str, **kwargs) -> requests.Response:
    return user.api.request(method, f"{hub.api}/{path}", timeout=120, **kwargs)


def wait_run(hub, user, run_id: int, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = api(hub, user, "GET", f"runs/{run_id}").json()
        if run["finished"]:
            return run
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} did not finish in {timeout} s")


def publish(hub, user, pipeline: str, nb: dict, profile: str = "pyspark", **fields) -> dict:
    """Publish `nb` as the next version of `pipeline` (TEAM/NAME) through the API."""
    body = {"notebook": nb, "profile": profile, **fields}
    response = api(hub, user, "POST", f"pipelines/{pipeline}/versions", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def deploy(hub, user, pipeline: str, **fields) -> dict:
    response = api(hub, user, "PUT", f"pipelines/{pipeline}/deployment", json=fields)
    assert response.status_code == 200, response.text
    return response.json()


def run_and_wait(hub, user, pipeline: str, **parameters) -> dict:
    started = api(hub, user, "POST", f"pipelines/{pipeline}/runs", json={"parameters": parameters})
    assert started.status_code == 201, started.text
    return wait_run(hub, user, started.json()["id"])


@pytest.fixture(scope="module")
def data_team_run(hub) -> dict:
    """A data-team pipeline (alice's) with one succeeded run, for the tests of what other teams
    can't reach: its repository, run folder and API routes."""
    alice = hub.user("alice")
    publish(hub, alice, "data-team/shared-report", V1)
    deploy(hub, alice, "data-team/shared-report")
    run = run_and_wait(hub, alice, "data-team/shared-report")
    assert run["status"] == "succeeded", run
    return run


def test_publish_run_and_find_the_output_with_injected_parameters(hub, tmp_path):
    """alice publishes v1 from a file with the CLI, deploys it with n=4 and runs it: the output
    notebook has papermill's injected parameters and the result; git has the version by alice."""
    alice = hub.user("alice")
    path = tmp_path / "daily-report.ipynb"
    path.write_text(json.dumps(V1))
    cli(
        hub,
        alice,
        "publish",
        str(path),
        "--team",
        "data-team",
        "--profile",
        "pyspark",
        "-m",
        "first",
        "--deploy",
        "-p",
        "n=4",
    )
    out = cli(hub, alice, "run", "data-team/daily-report", "--wait").stdout
    assert "succeeded" in out, out
    [run] = api(hub, alice, "GET", "pipelines/data-team/daily-report/runs").json()
    assert (run["version"], run["parameters"], run["started_by"]) == (1, {"n": 4, "greeting": "hi"}, "alice")
    output = nbformat.reads(api(hub, alice, "GET", f"runs/{run['id']}/output").text, as_version=4)
    injected = [c for c in output.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "n = 4" in injected[0].source
    assert "hihihihi" in "".join(o.get("text", "") for c in output.cells for o in c.get("outputs", []))
    version = api(hub, alice, "GET", "pipelines/data-team/daily-report").json()["versions"][0]
    assert version["parameters"] == {
        "n": {"type": "int", "default": 3},
        "greeting": {"type": "str", "default": "hi"},
    }
    assert version["resources"]["memory_limit"] == 4 * 2**30 and version["image"] == "pyspark"
    repo = Path(hub.settings["data_dir"]) / "pipelines" / "repos" / "data-team"
    log = subprocess.run(
        ["git", "-C", str(repo), "log", "--format=%an %s", "--", "daily-report"],
        capture_output=True,
        text=True,
    ).stdout
    assert log.strip() == "alice daily-report v1: first"
    stored = json.loads(
        subprocess.run(
            ["git", "-C", str(repo), "show", "daily-report/v1:daily-report/notebook.ipynb"],
            capture_output=True,
            text=True,
        ).stdout
    )
    assert all(not c.get("outputs") for c in stored["cells"]), "versions are stored without outputs"


READ_PIPELINE_STATE = """
import json
denied = {}
for path in json.loads(%r):
    try:
        with open(path, 'rb') as f:
            f.read(1)
        denied[path] = False
    except PermissionError:
        denied[path] = True
print(json.dumps(denied))
"""


def test_another_teams_user_cannot_read_pipeline_state_underneath_the_api(hub, data_team_run):
    """bob (gpu-team), as his own Unix user in a kernel of his own server, can open none of: the
    pipelines database, data-team's repository (files and .git), data-team's run folder, or the
    hub's own state (its database, password hashes, cookie secret). Another user's home is
    test_limits_and_isolation's test_users_cannot_read_each_others_homes."""
    bob = hub.user("bob")
    hub_state = Path(hub.settings["data_dir"]) / "hub"
    state = Path(hub.settings["data_dir"]) / "pipelines"
    repo, run_dir = state / "repos" / "data-team", state / "runs" / str(data_team_run["id"])
    targets = [
        state / "pipelines.sqlite",
        repo / "shared-report" / "notebook.ipynb",
        repo / ".git" / "HEAD",
        run_dir / "log.txt",
        run_dir / "output.ipynb",
        run_dir / "parameters.json",
        hub_state / "jupyterhub.sqlite",
        hub_state / "passwords.json",
        hub_state / "jupyterhub_cookie_secret",
    ]
    assert all(path.is_file() for path in targets), "the files exist: only bob is kept out"
    assert bob.start({"profile": "pytorch", "accelerator": "cpu"}).status_code in (201, 202)
    bob.wait_ready()
    try:
        code = READ_PIPELINE_STATE % json.dumps([str(p) for p in targets])
        denied = json.loads(run_code(bob, code).strip().splitlines()[-1])
    finally:
        bob.stop()
    assert denied == {str(p): True for p in targets}


def test_a_failing_version_is_recorded_notified_and_points_at_the_error_cell(hub, webhooks):
    """v2 divides by zero: the run is failed with the error, the webhook gets a Slack-style message
    linking to papermill's error anchor, and the output notebook keeps the cells before the error."""
    alice, p = hub.user("alice"), "data-team/divide"
    webhook_url, received = webhooks
    publish(hub, alice, p, V1)
    publish(hub, alice, p, V2, message="divide", parent=1)
    deploy(hub, alice, p, version=2, notify_url=webhook_url)
    run = run_and_wait(hub, alice, p)
    assert run["status"] == "failed" and run["version"] == 2
    assert "ZeroDivisionError" in run["reason"]
    output = nbformat.reads(api(hub, alice, "GET", f"runs/{run['id']}/output").text, as_version=4)
    assert output.cells[run["error_cell"]].source == "1/0"
    assert "before the error" in json.dumps(output.cells)
    deadline = time.monotonic() + 10
    while not received and time.monotonic() < deadline:
        time.sleep(0.2)
    [message] = received
    assert f"{p} run" in message["text"] and "failed" in message["text"]
    assert message["analysis_hub"]["url"].endswith(
        f"/services/pipelines/runs/{run['id']}#papermill-error-cell"
    )
    page = alice.api.get(f"{hub.url}/services/pipelines/runs/{run['id']}")
    assert page.status_code == 200 and 'class="status failed"' in page.text


def wait_scheduled_run(hub, user, pipeline: str, after: set[int], within: float = 90) -> dict:
    """The first run the `cron` trigger starts, among runs other than `after`, finished."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        runs = api(hub, user, "GET", f"pipelines/{pipeline}/runs").json()
        scheduled = next((r for r in runs if r["trigger"] == "cron" and r["id"] not in after), None)
        if scheduled:
            return wait_run(hub, user, scheduled["id"])
        time.sleep(1)
    raise AssertionError(f"no scheduled run of {pipeline} within {within} s")


def test_rollback_and_the_next_scheduled_run_uses_v1_while_the_authors_server_is_culled(hub):
    """alice publishes a notebook from her running server, rolls back a pipeline from a failing v2
    to v1 and schedules it every minute, and her idle server is culled: the next scheduled run
    fires on the minute without her server, runs v1, and succeeds."""
    alice, p = hub.user("alice"), "data-team/nightly"
    publish(hub, alice, p, V1)
    publish(hub, alice, p, V2, parent=1)
    deploy(hub, alice, p, version=2)
    assert alice.start({"profile": "pyspark", "idle_timeout": CULL_TIMEOUT}).status_code in (201, 202)
    alice.wait_ready()
    # Publishing straight from her server: the service reads the notebook with her token.
    saved = alice.server_api("/contents/weekly.ipynb", method="PUT", json={"type": "notebook", "content": V1})
    assert saved.status_code in (200, 201), saved.text
    cli(hub, alice, "publish", "weekly.ipynb", "--from-server", "--team", "data-team", "--profile", "pyspark")
    weekly = api(hub, alice, "GET", "pipelines/data-team/weekly").json()
    assert weekly["latest_version"] == 1 and weekly["versions"][0]["published_by"] == "alice"
    rolled_back = api(hub, alice, "POST", f"pipelines/{p}/rollback", json={"to": 1})
    assert rolled_back.json()["active_version"] == 1
    cli(hub, alice, "deploy", p, "--schedule", "* * * * *", "--timezone", "Europe/Paris")
    try:
        assert api(hub, alice, "GET", f"pipelines/{p}").json()["trigger"] == "cron"
        alice.wait_stopped(timeout=CULL_TIMEOUT + 60)  # the real idle culler stops it
        assert "Culling server alice" in hub.log()
        culled_at = {r["id"] for r in api(hub, alice, "GET", f"pipelines/{p}/runs").json()}
        run = wait_scheduled_run(hub, alice, p, after=culled_at)
        assert (run["status"], run["version"], run["started_by"]) == ("succeeded", 1, "schedule")
        assert "" not in alice.model()["servers"]
    finally:
        deploy(hub, alice, p, paused=True)  # no more runs every minute during the other tests


def test_the_audit_trail_lists_every_step_with_its_user(hub):
    """publish, deploy, run, rollback, a scheduled run, pause: each with who did it (the schedule for
    its run), and deploys and rollbacks with the deployment before and after."""
    alice, p = hub.user("alice"), "data-team/audited"
    publish(hub, alice, p, V1)
    deploy(hub, alice, p)
    run_and_wait(hub, alice, p)
    publish(hub, alice, p, V2, parent=1)
    deploy(hub, alice, p, version=2)
    run_and_wait(hub, alice, p)
    assert api(hub, alice, "POST", f"pipelines/{p}/rollback", json={"to": 1}).status_code == 200
    ran = {r["id"] for r in api(hub, alice, "GET", f"pipelines/{p}/runs").json()}
    deploy(hub, alice, p, schedule="* * * * *")
    try:
        wait_scheduled_run(hub, alice, p, after=ran)
    finally:
        deploy(hub, alice, p, paused=True)
    team, name = p.split("/")
    events = api(hub, alice, "GET", f"audit?team={team}&pipeline={name}").json()
    steps = [(e["actor"], e["action"]) for e in events]
    assert steps[:9] == [
        ("alice", "publish"),
        ("alice", "deploy"),
        ("alice", "run"),
        ("alice", "publish"),
        ("alice", "deploy"),
        ("alice", "run"),
        ("alice", "rollback"),
        ("alice", "deploy"),
        ("schedule", "run"),
    ], steps
    assert steps[-1] == ("alice", "pause")
    rollback = events[6]
    assert (rollback["before"]["active_version"], rollback["after"]["active_version"]) == (2, 1)
    assert (events[7]["before"]["trigger"], events[7]["after"]["trigger"]) == ("manual", "cron")
    assert events[8]["after"]["trigger"] == "cron"


def test_another_teams_user_gets_403_everywhere(hub, data_team_run):
    """bob (gpu-team) can't see, publish to, deploy, roll back, run or read runs of data-team's pipeline."""
    bob, p, run_id = hub.user("bob"), "pipelines/data-team/shared-report", data_team_run["id"]
    refused = [
        api(hub, bob, "GET", p),
        api(hub, bob, "POST", f"{p}/versions", json={"notebook": V1, "profile": "pyspark"}),
        api(hub, bob, "PUT", f"{p}/deployment", json={"version": 1}),
        api(hub, bob, "POST", f"{p}/rollback", json={"to": 1}),
        api(hub, bob, "POST", f"{p}/runs", json={}),
        api(hub, bob, "GET", f"{p}/runs"),
        api(hub, bob, "GET", f"runs/{run_id}"),
        api(hub, bob, "GET", f"runs/{run_id}/output"),
        api(hub, bob, "DELETE", p),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused), [
        (r.status_code, r.text[:80]) for r in refused
    ]
    # bob's own team may have pipelines (other tests make some); none of data-team's show.
    assert [x for x in api(hub, bob, "GET", "pipelines").json() if x["team"] == "data-team"] == []
    assert [e for e in api(hub, bob, "GET", "audit").json() if e["team"] == "data-team"] == []
    admin = hub.user("admin")
    assert api(hub, admin, "GET", p).status_code == 200, "admins see every team's pipelines"
    assert "shared-report" in [x["name"] for x in api(hub, admin, "GET", "pipelines").json()]
    assert any(e["pipeline"] == "shared-report" for e in api(hub, admin, "GET", "audit").json())


def test_bad_input_gets_a_clear_error_and_changes_nothing(hub):
    """No parameters cell, unknown profile, bad cron, a wrongly typed parameter, a huge upload, a name
    with path characters, a concurrent publish: each refused with its reason; versions, deployment
    and runs stay as they were."""
    alice, p = hub.user("alice"), "pipelines/data-team/checked"
    publish(hub, alice, "data-team/checked", V1)
    deploy(hub, alice, "data-team/checked", parameters={"n": 2})
    assert run_and_wait(hub, alice, "data-team/checked")["status"] == "succeeded"
    before = api(hub, alice, "GET", p).json()
    cases = [
        (
            "POST",
            f"{p}/versions",
            {"notebook": notebook("1", parameters=None), "profile": "pyspark"},
            400,
            "no cell tagged 'parameters'",
        ),
        ("POST", f"{p}/versions", {"notebook": V1, "profile": "nope"}, 400, "Unknown profile 'nope'"),
        ("POST", f"{p}/versions", {"notebook": V1, "profile": "pytorch"}, 400, "Unknown profile 'pytorch'"),
        (
            "PUT",
            f"{p}/deployment",
            {"schedule": "61 * * * *"},
            400,
            "schedule: '61 * * * *' is not a cron expression",
        ),
        ("PUT", f"{p}/deployment", {"parameters": {"n": "many"}}, 400, "n: expected int"),
        ("POST", f"{p}/runs", {"parameters": {"n": [1]}}, 400, "n: expected int"),
        (
            "POST",
            f"{p}/versions",
            {"notebook": {"cells": "x" * (21 * 2**20)}, "profile": "pyspark"},
            413,
            "the limit is 20 MiB",
        ),
        (
            "POST",
            "pipelines/data-team/..%2Fetc/versions",
            {"notebook": V1, "profile": "pyspark"},
            400,
            "not a valid name",
        ),
        (
            "POST",
            "pipelines/data-team/Bad.Name/versions",
            {"notebook": V1, "profile": "pyspark"},
            400,
            "not a valid name",
        ),
        (
            "POST",
            f"{p}/versions",
            {
                "notebook": {"cells": 7, "nbformat": 4, "nbformat_minor": 5, "metadata": {}},
                "profile": "pyspark",
            },
            400,
            "not a valid Jupyter notebook",
        ),
    ]
    for method, path, body, status, message in cases:
        response = api(hub, alice, method, path, json=body)
        assert response.status_code == status, (path, response.status_code, response.text[:200])
        assert message in response.json()["message"], response.json()["message"]

    # Two publishes on top of the same version at once: one wins, the other is told to look again.
    from concurrent.futures import ThreadPoolExecutor

    body = {"notebook": V1, "profile": "pyspark", "parent": before["latest_version"]}
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: api(hub, alice, "POST", f"{p}/versions", json=body), range(2)))
    assert sorted(r.status_code for r in results) == [201, 409], [r.text for r in results]
    assert "someone published meanwhile" in next(r for r in results if r.status_code == 409).json()["message"]

    after = api(hub, alice, "GET", p).json()
    assert after["versions"][: len(before["versions"])] == before["versions"]
    assert len(after["versions"]) == len(before["versions"]) + 1, "only the winning publish added a version"
    assert {k: after[k] for k in ("active_version", "schedule", "parameters", "paused")} == {
        k: before[k] for k in ("active_version", "schedule", "parameters", "paused")
    }
    assert after["runs"] == before["runs"]


def test_a_run_killed_for_memory_is_recorded_with_its_partial_output(hub):
    """A version on the 400 MiB `tiny` profile allocates 2 GiB: the kernel is killed, the run is
    failed with the memory limit named, and the output keeps what ran before."""
    alice = hub.user("alice")
    hungry = notebook("print('loaded', n)", "blob = bytearray(2 * 1024**3)", "print('done')")
    assert (
        api(
            hub,
            alice,
            "POST",
            "pipelines/data-team/hungry/versions",
            json={"notebook": hungry, "profile": "tiny"},
        ).status_code
        == 201
    )
    api(hub, alice, "PUT", "pipelines/data-team/hungry/deployment", json={})
    run = wait_run(
        hub, alice, api(hub, alice, "POST", "pipelines/data-team/hungry/runs", json={}).json()["id"]
    )
    assert run["status"] == "failed", run
    assert "memory limit (400 MiB)" in run["reason"], run["reason"]
    output = api(hub, alice, "GET", f"runs/{run['id']}/output").text
    assert "loaded 3" in output and "'done'" in output and "done\\n" not in output


def test_a_hub_restart_keeps_schedules_and_history(hub):
    """After the hub (and so the service) restarts, the history is intact and the schedule is
    registered again; an HTTP trigger works with its own token."""
    alice, p = hub.user("alice"), "pipelines/data-team/restarted"
    publish(hub, alice, "data-team/restarted", V1)
    deploy(hub, alice, "data-team/restarted", schedule="0 6 1 1 *")  # registered, not due in the test
    assert run_and_wait(hub, alice, "data-team/restarted")["status"] == "succeeded"
    before = api(hub, alice, "GET", p).json()
    assert before["next_run"]
    hub.stop(servers_too=False)
    hub.start()
    deadline = time.monotonic() + 30
    while api(hub, alice, "GET", p).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    after = api(hub, alice, "GET", p).json()
    assert after["runs"] == before["runs"] and after["versions"] == before["versions"]
    assert after["next_run"], "the cron schedule is registered again"
    deployed = api(hub, alice, "PUT", f"{p}/deployment", json={"trigger": "http"}).json()
    token = deployed["trigger_token"]
    wrong = requests.post(f"{hub.api}/{p}/trigger", headers={"Authorization": "Bearer nope"}, json={})
    assert wrong.status_code == 403
    fired = requests.post(f"{hub.api}/{p}/trigger", headers={"Authorization": f"Bearer {token}"}, json={})
    assert fired.status_code == 201 and fired.json()["trigger"] == "http"
    assert wait_run(hub, alice, fired.json()["id"])["status"] == "succeeded"


def test_a_teams_run_cannot_read_another_teams_run_and_is_still_recorded(hub, data_team_run, tmp_path):
    """Each team's runs execute as that team's own Unix user: a gpu-team notebook that opens
    data-team's run folder is denied by the file system, and its own run succeeds with its output."""
    import pwd

    bob, data_run = hub.user("bob"), data_team_run
    runs = Path(hub.settings["data_dir"]) / "pipelines" / "runs"
    target = runs / str(data_run["id"]) / "output.ipynb"
    snoop = notebook(
        "import getpass\n"
        "try:\n"
        f"    open({str(target)!r}).read()\n"
        "    print('read it')\n"
        "except PermissionError:\n"
        "    print('denied to', getpass.getuser())"
    )
    path = tmp_path / "snoop.ipynb"
    path.write_text(json.dumps(snoop))
    cli(hub, bob, "publish", str(path), "--team", "gpu-team", "--profile", "pyspark", "--deploy")
    assert "succeeded" in cli(hub, bob, "run", "gpu-team/snoop", "--wait").stdout
    [run] = api(hub, bob, "GET", "pipelines/gpu-team/snoop/runs").json()
    output = nbformat.reads(api(hub, bob, "GET", f"runs/{run['id']}/output").text, as_version=4)
    printed = "".join(o.get("text", "") for c in output.cells for o in c.get("outputs", []))
    assert printed.strip() == "denied to pipelines-gpu-team"
    owners = {
        team: pwd.getpwuid((runs / str(r["id"])).stat().st_uid).pw_name
        for team, r in (("data-team", data_run), ("gpu-team", run))
    }
    assert owners == {"data-team": "pipelines-data-team", "gpu-team": "pipelines-gpu-team"}
