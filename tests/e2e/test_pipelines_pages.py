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
    """bob (gpu-team) finds no pipelines, and data-team's pipeline page is refused."""
    hub = hub_with_runs
    log_in(page, hub.url, "bob", USERS["bob"])
    page.goto(f"{hub.url}/services/pipelines/")
    expect(page.locator("body")).to_contain_text("No pipelines of your teams yet")
    response = page.goto(f"{hub.url}/services/pipelines/p/data-team/report")
    assert response.status == 403
