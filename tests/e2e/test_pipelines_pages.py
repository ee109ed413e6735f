"""The pipelines pages in headless Chromium: from the hub's home page to a run's output notebook.

alice's pipeline has a succeeded run (v1) and a failed one (v2, divides by
zero), made through the REST API; the browser then follows the links a
person would: hub home -> Pipelines (the service's OAuth login, no consent
page) -> the pipeline -> the failed run, whose output notebook is rendered
in the page, scrolled to the error.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from browser import browser, log_in, page, screenshot  # noqa: F401
from conftest import USERS, start_hub
from notebooks import make_notebook
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def hub_with_runs():
    running = start_hub()
    alice = running.user("alice")
    api = f"{running.url}/services/pipelines/api/pipelines/data-team/report"
    v1, v2 = (
        make_notebook("print('ok' * n)", parameters="n = 2"),
        make_notebook("print('start')", "1/0", parameters="n = 2"),
    )
    for version, nb in ((1, v1), (2, v2)):
        assert (
            alice.api.post(f"{api}/versions", json={"notebook": nb, "profile": "pyspark"}).status_code == 201
        )
        alice.api.put(f"{api}/deployment", json={"version": version}).raise_for_status()
        run_id = alice.api.post(f"{api}/runs", json={}).json()["id"]
        deadline = time.monotonic() + 600
        while not alice.api.get(f"{running.url}/services/pipelines/api/runs/{run_id}").json()["finished"]:
            assert time.monotonic() < deadline, "run did not finish"
            time.sleep(0.5)
    yield running
    running.stop()


def test_from_the_hub_home_to_a_failed_runs_error_cell(hub_with_runs, page):  # noqa: F811
    """The hub's home links to the pipelines page; it lists the pipeline with its last run's status;
    the pipeline page shows versions and run history in status colours; the failed run's page
    renders its output notebook with the error."""
    hub = hub_with_runs
    log_in(page, hub.url, "alice", USERS["alice"])
    page.goto(f"{hub.url}/hub/home")
    page.locator("#pipelines-link").click()
    expect(page).to_have_url(re.compile(r"/services/pipelines/$"))
    row = page.locator('#pipelines tr[data-pipeline="data-team/report"]')
    expect(row).to_contain_text("v2")
    expect(row.locator(".status")).to_have_text("failed")

    row.get_by_role("link", name="data-team/report").click()
    expect(page.locator("#deployment")).to_contain_text("Active: v2")
    expect(page.locator("#versions tr[data-version]")).to_have_count(2)
    statuses = page.locator("#runs .status")
    expect(statuses).to_have_text(["failed", "succeeded"])
    colours = statuses.evaluate_all("els => els.map(e => getComputedStyle(e).backgroundColor)")
    assert colours == ["rgb(198, 40, 40)", "rgb(46, 125, 50)"], "red for failed, green for succeeded"
    screenshot(page, "pipeline-page")

    page.locator("#runs tr[data-run] a").first.click()
    expect(page.locator("#run-status")).to_have_text("failed")
    expect(page.locator("body")).to_contain_text("ZeroDivisionError")
    output = page.frame_locator("#output")
    expect(output.locator("body")).to_contain_text("ZeroDivisionError", timeout=20_000)
    expect(output.locator("body")).to_contain_text("start")
    screenshot(page, "pipeline-failed-run")


def test_another_team_sees_no_pipelines(hub_with_runs, page):  # noqa: F811
    """bob (gpu-team) finds no pipelines, and data-team's pipeline page is refused with a page that
    keeps the hub's navigation."""
    hub = hub_with_runs
    log_in(page, hub.url, "bob", USERS["bob"])
    page.goto(f"{hub.url}/services/pipelines/")
    expect(page.locator("body")).to_contain_text("No pipelines of your teams yet")
    response = page.goto(f"{hub.url}/services/pipelines/p/data-team/report")
    assert response.status == 403
    expect(page.locator("#error-message")).to_contain_text("only members of data-team")
    nav = page.locator("nav")  # the refusal keeps the hub's navigation
    expect(nav.get_by_role("link", name="Pipelines")).to_have_attribute("href", "/services/pipelines/")
    expect(nav).to_contain_text("bob")


@pytest.fixture(scope="module")
def acting(hub_with_runs):
    """The same hub with data-team/acting, for the tests that act on a pipeline (so the pipeline
    above keeps its state): v1 prints 'ok' * n, v2 divides by zero; v1 is active, no runs yet."""
    alice = hub_with_runs.user("alice")
    api = f"{hub_with_runs.url}/services/pipelines/api/pipelines/data-team/acting"
    for nb in (
        make_notebook("print('ok' * n)", parameters="n = 2"),
        make_notebook("print('start')", "1/0", parameters="n = 2"),
    ):
        published = alice.api.post(f"{api}/versions", json={"notebook": nb, "profile": "pyspark"})
        assert published.status_code == 201
    make_active(hub_with_runs, 1)
    return hub_with_runs


def make_active(hub, version: int) -> None:
    """Through the API, so that a test doesn't depend on the ones before it."""
    api = f"{hub.url}/services/pipelines/api/pipelines/data-team/acting"
    hub.user("alice").api.put(f"{api}/deployment", json={"version": version}).raise_for_status()


def pipeline_state(hub, name: str = "acting") -> dict:
    response = hub.user("alice").api.get(f"{hub.url}/services/pipelines/api/pipelines/data-team/{name}")
    response.raise_for_status()
    return response.json()


def test_roll_back_from_the_page_and_see_the_audit_entry(acting, page):  # noqa: F811
    """alice rolls back to v1 with the version's button, confirming the question; the page then
    shows v1 active, and the team's audit page, filtered to rollbacks, shows her v2 -> v1."""
    hub = acting
    make_active(hub, 2)
    log_in(page, hub.url, "alice", USERS["alice"])
    page.goto(f"{hub.url}/services/pipelines/p/data-team/acting")
    questions = []
    page.on("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    page.locator('#versions tr[data-version="1"] form.rollback button').click()
    expect(page.locator("#deployment")).to_contain_text("Active: v1")
    assert questions == ["Make v1 the active version of data-team/acting?"]
    page.goto(f"{hub.url}/services/pipelines/audit/data-team")
    page.locator("select[name=action]").select_option("rollback")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("#audit tr[data-action]")
    expect(rows.first).to_have_attribute("data-action", "rollback")
    expect(page.locator('#audit tr[data-action]:not([data-action="rollback"])')).to_have_count(0)
    expect(rows.first).to_contain_text("alice")
    expect(rows.first.locator(".changes")).to_have_text("active_version: 2 → 1")  # what changed, only
    screenshot(page, "pipeline-audit")


def test_run_now_with_a_changed_parameter_and_watch_it_succeed(acting, page):  # noqa: F811
    """On the pipeline page (v1 active), alice sets n = 5 in the typed form and clicks Run now;
    the run page shows the run going on to succeeded without a reload, then its output
    (print('ok' * n) with n = 5); the pipeline page shows the run's duration and a chart bar."""
    hub = acting
    make_active(hub, 1)
    log_in(page, hub.url, "alice", USERS["alice"])
    page.goto(f"{hub.url}/services/pipelines/p/data-team/acting")
    expect(page.locator("#param-n")).to_have_attribute("type", "number")
    page.fill("#param-n", "5")
    page.locator("#run-now").click()
    expect(page).to_have_url(re.compile(r"/services/pipelines/runs/\d+$"))
    first_status = page.locator("#run-status").text_content()
    page.evaluate("window.notReloaded = true")
    expect(page.locator("#run-parameters")).to_contain_text('"n": 5')
    expect(page.locator("#run-status")).to_have_text("succeeded", timeout=300_000)
    assert page.evaluate("window.notReloaded === true"), "the status changed without a reload"
    assert first_status in ("queued", "running"), first_status
    output = page.frame_locator("#output")
    expect(output.locator("body")).to_contain_text("ok" * 5, timeout=20_000)
    screenshot(page, "pipeline-run")

    page.goto(f"{hub.url}/services/pipelines/p/data-team/acting")
    newest = page.locator("#runs tr[data-run]").first
    expect(newest.locator(".status")).to_have_text("succeeded")
    expect(newest.locator(".duration")).to_have_text(re.compile(r"^\d+ (s|min)"))
    bars = page.locator("#chart rect")
    expect(bars.last).to_have_class("succeeded")
    assert bars.count() == len(pipeline_state(hub)["runs"]), "one bar per run (fewer than 30 here)"
    screenshot(page, "pipeline-page-actions")


def test_forged_and_foreign_posts_are_refused_and_change_nothing(acting, page):  # noqa: F811
    """A POST with alice's cookie but no XSRF token (a forged form) is 403; bob (gpu-team), with
    his own valid XSRF token, gets 403 posting to data-team's pipeline and sees no page to act
    on; the active version stays. Cancelling a finished run through the API is 409 for alice and
    403 for bob."""
    hub = acting
    base = f"{hub.url}/services/pipelines"
    before = pipeline_state(hub)["active_version"]
    other = 2 if before == 1 else 1
    log_in(page, hub.url, "alice", USERS["alice"])
    page.goto(f"{base}/p/data-team/acting")
    expect(page.locator("#run-now")).to_be_visible()
    forged = page.request.post(f"{base}/p/data-team/acting/rollback", form={"to": str(other)})
    assert forged.status == 403
    page.context.clear_cookies()

    log_in(page, hub.url, "bob", USERS["bob"])
    response = page.goto(f"{base}/p/data-team/acting")
    assert response.status == 403
    expect(page.locator("form")).to_have_count(0)
    page.goto(f"{base}/")
    token = page.locator("meta[name=xsrf]").get_attribute("content")
    foreign = page.request.post(
        f"{base}/p/data-team/acting/rollback", form={"to": str(other), "_xsrf": token}
    )
    assert foreign.status == 403 and "only members of data-team" in foreign.text()
    assert pipeline_state(hub)["active_version"] == before

    finished = pipeline_state(hub, "report")["runs"][0]["id"]
    assert hub.user("bob").api.post(f"{base}/api/runs/{finished}/cancel").status_code == 403
    again = hub.user("alice").api.post(f"{base}/api/runs/{finished}/cancel")
    assert again.status_code == 409 and "already finished" in again.json()["message"]


def test_edit_settings_then_pause_and_resume_from_the_page(acting, page):  # noqa: F811
    """alice saves a schedule, timeout, retries and a parameter override with the settings form;
    the deployment shows them; a bad schedule is refused on the form itself, naming it and keeping
    what she typed, changing nothing;
    Pause asks first and pauses, Resume resumes; the audit has each."""
    hub = acting
    make_active(hub, 1)
    log_in(page, hub.url, "alice", USERS["alice"])
    page.goto(f"{hub.url}/services/pipelines/p/data-team/acting")
    page.fill("#schedule", "0 6 * * 1-5")
    page.fill("#timezone", "Europe/Paris")
    page.fill("#timeout", "120")
    page.fill("#retries", "1")
    page.fill("#parameters", '{"n": 7}')
    page.locator("#save-settings").click()
    deployment = page.locator("#deployment")
    expect(deployment).to_contain_text("0 6 * * 1-5")
    expect(deployment).to_contain_text("timeout 2 min, retries 1")
    expect(page.locator("#param-n")).to_have_value("7")
    page.fill("#schedule", "every morning")
    page.fill("#retries", "2")
    page.locator("#save-settings").click()
    expect(page.locator("#settings-error")).to_contain_text("every morning")
    expect(page.locator("#schedule")).to_have_value("every morning")  # as typed, to correct
    expect(page.locator("#retries")).to_have_value("2")
    expect(deployment).to_contain_text("0 6 * * 1-5")  # what is saved is said as before
    expect(deployment).to_contain_text("retries 1")
    page.goto(f"{hub.url}/services/pipelines/p/data-team/acting")
    page.on("dialog", lambda dialog: dialog.accept())
    page.locator("#pause").click()
    expect(deployment).to_contain_text("paused")
    page.locator("#resume").click()
    expect(page.locator("#pause")).to_be_visible()
    state = pipeline_state(hub)
    assert (state["schedule"], state["timezone"], state["paused"]) == ("0 6 * * 1-5", "Europe/Paris", False)
    actions = [
        e["action"]
        for e in hub.user("alice")
        .api.get(f"{hub.url}/services/pipelines/api/audit?team=data-team&pipeline=acting")
        .json()
    ]
    assert actions[-3:] == ["deploy", "pause", "resume"]


def test_cancel_a_running_run_from_its_page(acting, page):  # noqa: F811
    """A run that sleeps is cancelled with the run page's button (after the question): the page it
    returns to shows it cancelled by alice, without the Cancel button, the API says so, and the
    notebook's kernel (its PID printed by the first cell) is gone."""
    hub = acting
    api = f"{hub.url}/services/pipelines/api/pipelines/data-team/slow"
    alice = hub.user("alice")
    first_cell = "import os, time; print('pid', os.getpid())"
    notebook = make_notebook(first_cell, "time.sleep(600)", parameters="n = 2")
    assert alice.api.post(f"{api}/versions", json={"notebook": notebook, "profile": "pyspark"}).ok
    alice.api.put(f"{api}/deployment", json={"version": 1}).raise_for_status()
    run_id = alice.api.post(f"{api}/runs", json={}).json()["id"]
    log_in(page, hub.url, "alice", USERS["alice"])
    page.goto(f"{hub.url}/services/pipelines/runs/{run_id}")
    expect(page.locator("#run-status")).to_have_text("running", timeout=120_000)
    kernel = kernel_pid(alice, f"{hub.url}/services/pipelines/api/runs/{run_id}/output")
    assert alive(kernel)
    page.on("dialog", lambda dialog: dialog.accept())
    page.locator("#cancel").click()
    expect(page.locator("#run-status")).to_have_text("cancelled")
    expect(page.locator("#run-reason")).to_have_text("cancelled by alice")
    expect(page.locator("#cancel")).to_have_count(0)
    run = alice.api.get(f"{hub.url}/services/pipelines/api/runs/{run_id}").json()
    assert (run["status"], run["finished"]) == ("cancelled", True)
    assert not alive(kernel), "cancelling killed the run's processes"


def kernel_pid(user, output_url: str) -> int:
    """The PID the first cell printed, from the output notebook papermill saves after each cell."""
    deadline = time.monotonic() + 120
    while True:
        response = user.api.get(output_url)
        found = re.search(r"pid (\d+)", response.text) if response.ok else None
        if found:
            return int(found.group(1))
        assert time.monotonic() < deadline, "the first cell's output never appeared"
        time.sleep(0.5)


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for a parent (the kernel is reparented when papermill dies)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_the_hub_home_shows_the_teams_pipelines_with_their_last_run(hub_with_runs, page):  # noqa: F811
    """alice's hub home page frames her teams' pipelines, each with its last run's status,
    linking to the pipeline page."""
    hub = hub_with_runs
    log_in(page, hub.url, "alice", USERS["alice"])
    page.goto(f"{hub.url}/hub/home")
    summary = page.frame_locator("#pipelines-summary")
    row = summary.locator('#summary tr[data-pipeline="data-team/report"]')
    expect(row.locator(".status")).to_have_text(re.compile("succeeded|failed"), timeout=20_000)
    expect(row.get_by_role("link", name="data-team/report")).to_have_attribute(
        "href", "/services/pipelines/p/data-team/report"
    )
    screenshot(page, "hub-home-pipelines")


def test_two_versions_side_by_side_in_nbdimes_web_diff(hub_with_runs, page):  # noqa: F811
    """From the pipeline page's Compare form, v1 and v2 open side by side in nbdime's own web
    diff: v2's added cell (1/0) is shown as added; bob (another team) gets 403 for the page."""
    hub = hub_with_runs
    log_in(page, hub.url, "alice", USERS["alice"])
    page.goto(f"{hub.url}/services/pipelines/p/data-team/report")
    page.locator("#compare button").click()
    expect(page).to_have_url(re.compile(r"/p/data-team/report/diff\?a=1&b=2"))
    added = page.locator("#nbdime-root .jp-Diff-added")
    expect(added.first).to_be_visible(timeout=20_000)
    expect(page.locator("#nbdime-root")).to_contain_text("1/0")
    screenshot(page, "pipeline-diff")
    page.context.clear_cookies()
    log_in(page, hub.url, "bob", USERS["bob"])
    assert page.goto(f"{hub.url}/services/pipelines/p/data-team/report/diff?a=1&b=2").status == 403
