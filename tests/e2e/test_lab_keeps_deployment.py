"""JupyterLab's "Publish new version…" on a deployed pipeline, in headless Chromium (issue 26).

alice's data-team/spark-count runs on cron `0 6 * * 1-5` in Europe/Paris with a
parameter and a webhook (v1 and v2 published and deployed through the REST API,
and her notebook records the pipeline in its metadata, as a publish from the lab
leaves it). What she set must survive what she does in the browser: a new version
published from the dialog keeps the deployment unless she changes it there, a
change says what it replaces, and a rollback keeps it too. The toolbar follows a
rollback made in another tab without reloading JupyterLab.
"""

from __future__ import annotations

import pytest
from browser import browser, log_in, page, screenshot  # noqa: F401
from conftest import USERS, start_hub
from notebooks import make_notebook
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

SPAWN_TIMEOUT_MS = 10 * 60_000  # a first spawn may build the pyspark environment
NOTEBOOK = "Spark Count.ipynb"
PIPELINE = "data-team/spark-count"
WEBHOOK = "http://127.0.0.1:9/hooks/spark-count"
DEPLOYED = {
    "trigger": "cron",
    "schedule": "0 6 * * 1-5",
    "timezone": "Europe/Paris",
    "parameters": {"n": 7},
    "notify_url": WEBHOOK,
}


@pytest.fixture(scope="module")
def hub_with_deployed_pipeline():
    running = start_hub()
    alice = running.user("alice")
    alice.start({"profile": "pyspark"}).raise_for_status()
    api = f"{running.url}/services/pipelines/api/pipelines/{PIPELINE}"
    nb = make_notebook("print(greeting * n)", parameters="n = 2\ngreeting = 'hi'")
    for number in (1, 2):
        published = alice.api.post(f"{api}/versions", json={"notebook": nb, "profile": "pyspark"})
        assert published.status_code == 201, published.text
        alice.api.put(f"{api}/deployment", json={**DEPLOYED, "version": number}).raise_for_status()
    alice.wait_ready(timeout=SPAWN_TIMEOUT_MS / 1000)
    nb["metadata"]["analysis_hub"] = {"pipeline": {"team": "data-team", "name": "spark-count", "version": 2}}
    put = alice.server_api(f"/contents/{NOTEBOOK}", method="PUT", json={"type": "notebook", "content": nb})
    assert put.status_code in (200, 201), put.text
    yield running
    running.stop()


def deployment(hub) -> dict:
    described = hub.user("alice").api.get(f"{hub.url}/services/pipelines/api/pipelines/{PIPELINE}")
    described.raise_for_status()
    return described.json()


def open_notebook(tab, hub):
    log_in(tab, hub.url, "alice", USERS["alice"])
    tab.goto(f"{hub.url}/user/alice/lab/tree/{NOTEBOOK}")
    button = tab.locator(".ah-publish-button")
    expect(button).to_have_text("Publish new version…", timeout=120_000)
    return button


def test_a_new_version_keeps_the_deployment_and_a_change_says_what_it_replaces(
    hub_with_deployed_pipeline,
    page,  # noqa: F811
):
    """The dialog opens with the deployment's trigger, schedule, time zone, parameter and webhook;
    publishing it unchanged keeps all of them. Changing the schedule and the parameter shows
    what each replaces, and only those change. Rolling back from the pipeline page keeps the
    schedule, the parameter and the webhook."""
    hub = hub_with_deployed_pipeline
    button = open_notebook(page, hub)
    button.click()
    form = page.locator(".jp-Dialog .ah-publish-form")
    expect(page.locator(".jp-Dialog-header")).to_have_text("Publish new version")
    expect(form.locator("select[name=trigger]")).to_have_value("cron")
    expect(form.locator("input[name=schedule]")).to_have_value("0 6 * * 1-5")
    expect(form.locator("input[name=timezone]")).to_have_value("Europe/Paris")
    expect(form.locator('[data-parameter="n"]')).to_have_value("7")
    expect(form.locator('[data-parameter="greeting"]')).to_have_value("hi")
    expect(form.locator("input[name=notify_url]")).to_have_value(WEBHOOK)
    expect(form.locator(".ah-publish-preview strong")).to_have_text("weekdays at 06:00 Europe/Paris")
    expect(form.locator(".ah-publish-replaces li")).to_have_count(0)
    screenshot(page, "lab-new-version-dialog")
    page.locator(".jp-Dialog").get_by_role("button", name="Publish").click()
    done = page.locator(".jp-Dialog .ah-publish-done")
    expect(done).to_contain_text("v3", timeout=120_000)
    page.locator(".jp-Dialog").get_by_role("button", name="Ok").click()
    kept = deployment(hub)
    assert kept["active_version"] == 3
    assert {key: kept[key] for key in DEPLOYED} == DEPLOYED

    button.click()
    form = page.locator(".jp-Dialog .ah-publish-form")
    expect(form.locator("input[name=schedule]")).to_have_value("0 6 * * 1-5")
    form.locator("input[name=schedule]").fill("30 7 * * 1-5")
    form.locator('[data-parameter="n"]').fill("9")
    replaces = form.locator(".ah-publish-replaces li")
    expect(replaces).to_have_text(
        ["Trigger: replaces cron 0 6 * * 1-5 Europe/Paris", "Parameter n: replaces 7"]
    )
    screenshot(page, "lab-new-version-changes")
    page.locator(".jp-Dialog").get_by_role("button", name="Publish").click()
    expect(page.locator(".jp-Dialog .ah-publish-done")).to_contain_text("v4", timeout=120_000)
    page.locator(".jp-Dialog").get_by_role("button", name="Ok").click()
    changed = deployment(hub)
    expected = {**DEPLOYED, "schedule": "30 7 * * 1-5", "parameters": {"n": 9}}
    assert {key: changed[key] for key in DEPLOYED} == expected

    page.goto(f"{hub.url}/services/pipelines/p/{PIPELINE}")
    page.once("dialog", lambda d: d.accept())
    page.locator('#versions tr[data-version="1"]').get_by_role("button", name="Roll back to v1").click()
    expect(page.locator("#deployment")).to_contain_text("Active: v1, cron 30 7 * * 1-5 (Europe/Paris)")
    rolled = deployment(hub)
    assert {key: rolled[key] for key in DEPLOYED} == expected


def test_the_toolbar_follows_a_rollback_made_in_another_tab(hub_with_deployed_pipeline, page):  # noqa: F811
    """With the notebook open, alice rolls the pipeline back on its page in another tab; when she
    comes back to JupyterLab, the toolbar names the version that is active now, without a reload."""
    hub = hub_with_deployed_pipeline
    open_notebook(page, hub)
    # Tabs take and lose focus as in a windowed browser (Playwright keeps every page focused
    # unless told; a navigation resets it, so after JupyterLab has loaded).
    page.context.new_cdp_session(page).send("Emulation.setFocusEmulationEnabled", {"enabled": False})
    active = deployment(hub)["active_version"]
    label = page.locator(".ah-publish-status")
    expect(label).to_have_text(f"{PIPELINE} · active v{active}", timeout=30_000)
    target = 2 if active != 2 else 1

    pipeline_page = page.context.new_page()
    pipeline_page.bring_to_front()
    pipeline_page.goto(f"{hub.url}/services/pipelines/p/{PIPELINE}")
    pipeline_page.once("dialog", lambda d: d.accept())
    row = pipeline_page.locator(f'#versions tr[data-version="{target}"]')
    row.get_by_role("button", name=f"to v{target}").click()
    expect(pipeline_page.locator("#deployment")).to_contain_text(f"Active: v{target}")

    page.bring_to_front()
    expect(label).to_have_text(f"{PIPELINE} · active v{target}", timeout=30_000)
    screenshot(page, "lab-toolbar-after-rollback")


def test_the_dialog_says_why_a_gpu_profile_cant_run_and_the_label_gives_way(
    hub_with_deployed_pipeline,
    page,  # noqa: F811
):
    """On this machine (no GPU) the dialog shows "PyTorch (GPU)" as the spawn form does, with the
    reason and not selectable. With the property inspector open, the pipeline label shrinks
    (ellipsized, its title whole) and the kernel name stays in the notebook's toolbar."""
    hub = hub_with_deployed_pipeline
    button = open_notebook(page, hub)
    button.click()
    pytorch = page.locator(".jp-Dialog select[name=profile] option[value=pytorch]")
    expect(pytorch).to_have_text("PyTorch (GPU) (needs a GPU; this machine has none)")
    expect(pytorch).to_be_disabled()
    screenshot(page, "lab-dialog-gpu-profile")
    page.locator(".jp-Dialog").get_by_role("button", name="Cancel").click()

    label = page.locator(".ah-publish-status")
    expect(label).to_contain_text(f"{PIPELINE} · active v", timeout=30_000)
    page.locator('.jp-SideBar.jp-mod-right .lm-TabBar-tab[data-id="jp-property-inspector"]').click()
    expect(page.locator("#jp-property-inspector")).to_be_visible()
    toolbar = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-NotebookPanel-toolbar")
    expect(toolbar.locator(':scope > [data-jp-item-name="kernelName"]')).to_be_visible()
    expect(toolbar.locator(":scope > .jp-Toolbar-responsive-opener")).to_be_hidden()
    assert label.evaluate("a => a.scrollWidth > a.clientWidth"), "the label is ellipsized, not pushed out"
    assert label.get_attribute("title").startswith(PIPELINE)
    screenshot(page, "lab-toolbar-property-inspector")
