"""Publishing a notebook from JupyterLab, in headless Chromium: the one-click flow of issue 15.

A real hub (local backend) starts alice's pyspark server, whose environment
carries the JupyterLab extension built by `make lab` (lab-extension/). alice
opens a notebook with a parameters cell and publishes it with the toolbar's
"Publish as pipeline…": she never sees or makes a token; her server's own
hub token, scoped to the pipelines service, carries the request.
"""

from __future__ import annotations

import re

import pytest
from browser import browser, log_in, page, screenshot  # noqa: F401
from conftest import USERS, start_hub
from notebooks import make_notebook
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

SPAWN_TIMEOUT_MS = 10 * 60_000  # a first spawn may build the pyspark environment
NOTEBOOK = "Daily Report.ipynb"


@pytest.fixture(scope="module")
def hub_with_server():
    running = start_hub()
    alice = running.user("alice")
    # The hub's own spawn API as the form would call it; the notebook is put in her home
    # through her server's contents API (setup only: alice's steps below are the browser's).
    alice.start({"profile": "pyspark"}).raise_for_status()
    alice.wait_ready(timeout=SPAWN_TIMEOUT_MS / 1000)
    nb = make_notebook("print(greeting * n)", parameters="n = 2\ngreeting = 'hi'\nrate = 0.5")
    put = alice.server_api(f"/contents/{NOTEBOOK}", method="PUT", json={"type": "notebook", "content": nb})
    assert put.status_code in (200, 201), put.text
    yield running
    running.stop()


def test_publish_from_the_notebook_toolbar(hub_with_server, page):  # noqa: F811
    """alice publishes her notebook from the toolbar (the File menu has the command too): the
    dialog offers her team, a name from the file name, her server's profile and the parameters
    with their types, and says the cron schedule in words with its next three runs; after
    publishing, the toolbar shows the pipeline with its active version and offers "Publish new
    version…", and the pipeline page shows v1 published by alice with the pyspark profile, the
    changed parameter deployed and the schedule; the notebook records the pipeline in its
    metadata."""
    hub = hub_with_server
    log_in(page, hub.url, "alice", USERS["alice"])
    page.goto(f"{hub.url}/user/alice/lab/tree/{NOTEBOOK}")
    button = page.locator(".ah-publish-button")
    expect(button).to_have_text("Publish as pipeline…", timeout=120_000)
    # The same command is in the File menu.
    page.locator(".lm-MenuBar-itemLabel", has_text="File").click()
    expect(page.locator(".lm-Menu-itemLabel", has_text="Publish as Pipeline…")).to_be_visible()
    page.keyboard.press("Escape")
    button.click()

    dialog = page.locator(".jp-Dialog")
    expect(dialog.locator(".jp-Dialog-header")).to_have_text("Publish as pipeline")
    form = dialog.locator(".ah-publish-form")
    expect(form.locator("select[name=team]")).to_have_value("data-team")
    expect(form.locator("input[name=name]")).to_have_value("daily-report")
    expect(form.locator("select[name=profile]")).to_have_value("pyspark")
    parameters = form.locator(".ah-publish-parameter")
    expect(parameters).to_have_count(3)
    expect(parameters.locator(".ah-publish-type")).to_have_text(["int", "str", "float"])
    expect(form.locator('[data-parameter="n"]')).to_have_attribute("type", "number")
    expect(form.locator('[data-parameter="n"]')).to_have_value("2")
    expect(form.locator('[data-parameter="greeting"]')).to_have_value("hi")
    form.locator('[data-parameter="n"]').fill("7")

    form.locator("select[name=trigger]").select_option("cron")
    form.locator("input[name=schedule]").fill("0 6 * * 1-5")
    form.locator("input[name=timezone]").fill("Europe/Paris")
    preview = form.locator(".ah-publish-preview")
    expect(preview.locator("strong")).to_have_text("weekdays at 06:00 Europe/Paris")
    expect(preview.locator("li")).to_have_count(3)
    times = preview.locator("li").evaluate_all("items => items.map(li => li.title)")
    assert all(re.match(r"\d{4}-\d\d-\d\dT06:00:00\+0[12]:00$", t) for t in times), times
    form.locator("textarea[name=message]").fill("first version, from JupyterLab")
    expect(form.locator("input[name=deploy]")).to_be_checked()
    screenshot(page, "publish-dialog")

    dialog.get_by_role("button", name="Publish").click()
    done = page.locator(".jp-Dialog .ah-publish-done")
    expect(done).to_contain_text("Published data-team/daily-report v1 with profile pyspark", timeout=120_000)
    expect(done).to_contain_text("active: v1")
    link = done.get_by_role("link", name="Open the pipeline page")
    expect(link).to_have_attribute("href", "/services/pipelines/p/data-team/daily-report")
    screenshot(page, "publish-done")
    page.locator(".jp-Dialog").get_by_role("button", name="Ok").click()

    expect(page.locator(".ah-publish-status")).to_have_text("data-team/daily-report · active v1")
    expect(button).to_have_text("Publish new version…")
    page.locator(".lm-MenuBar-itemLabel", has_text="File").click()
    expect(page.locator(".lm-Menu-itemLabel", has_text="Publish New Pipeline Version…")).to_be_visible()
    page.keyboard.press("Escape")

    # The notebook on disk names its pipeline (what "Publish new version" starts from).
    saved = hub.user("alice").server_api(f"/contents/{NOTEBOOK}").json()["content"]
    assert saved["metadata"]["analysis_hub"]["pipeline"] == {
        "team": "data-team",
        "name": "daily-report",
        "version": 1,
    }

    page.goto(f"{hub.url}/services/pipelines/p/data-team/daily-report")
    expect(page.locator("#deployment")).to_contain_text("Active: v1, cron 0 6 * * 1-5 (Europe/Paris)")
    version = page.locator('#versions tr[data-version="1"]')
    expect(version).to_contain_text("alice")
    expect(version).to_contain_text("pyspark")
    expect(version).to_contain_text("first version, from JupyterLab")
    expect(page.locator("#param-n")).to_have_value("7")
    expect(page.locator("#param-greeting")).to_have_value("hi")
    screenshot(page, "publish-pipeline-page")

    described = hub.user("alice").api.get(
        f"{hub.url}/services/pipelines/api/pipelines/data-team/daily-report"
    )
    pipeline = described.json()
    assert pipeline["parameters"] == {"n": 7}
    assert pipeline["versions"][0]["parameters"] == {
        "n": {"type": "int", "default": 2},
        "greeting": {"type": "str", "default": "hi"},
        "rate": {"type": "float", "default": 0.5},
    }
    assert pipeline["versions"][0]["published_by"] == "alice"
