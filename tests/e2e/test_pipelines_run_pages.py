"""Run pages in headless Chromium, as the team and as an approver from another team see them.

One hub (`workflow_runs.start_workflows_hub`): alice is in data-team, bob in
gpu-team, carol in ml-leads. Each test publishes its own pipelines over REST
and then looks at them in the browser:
- every status is readable: its text against the colour behind it, read
  from the computed styles, on the run page, the pipeline page and the hub
  home's summary;
- a run page left open ends up showing what a reload of it shows, for a
  workflow that reaches its gate and for a run that fails;
- an approver from another team finds the runs waiting for her on her
  Pipelines page and sees only the actions she may take.
Steps that must still be running while the page is open wait for a release
file the test writes.
"""

from __future__ import annotations

import re

import pytest
from analysis_hub.pipelines.statuses import STEP_FINISHED, UNFINISHED
from browser import browser, log_in, page, screenshot  # noqa: F401
from conftest import USERS, make_workdir
from notebooks import make_notebook
from playwright.sync_api import expect
from workflow_runs import FIRST, SHIP, api, publish_workflow, start_run, start_workflows_hub, wait_run

pytestmark = pytest.mark.e2e

SERVICE = "/services/pipelines"
STATUSES = ["pending", *UNFINISHED, *STEP_FINISHED]  # every status a run or a step can have


@pytest.fixture(scope="module")
def hub():
    running = start_workflows_hub()
    yield running
    running.stop()


def gated(approvers: str) -> dict:
    """first -> review (an approval gate of `approvers`) -> ship."""
    return {
        "steps": [
            {"name": "first", "notebook": "first.ipynb", "profile": "pyspark"},
            {"name": "review", "kind": "approval", "approvers": approvers, "depends_on": ["first"]},
            {"name": "ship", "notebook": "ship.ipynb", "profile": "pyspark", "depends_on": ["review"]},
        ]
    }


def held_first(release) -> dict:
    """FIRST, but holding until the file `release` exists (so a page can be opened meanwhile)."""
    return make_notebook(
        "import os, time\n"
        "from analysis_hub_outputs import record\n"
        "while not os.path.exists(release):\n"
        "    time.sleep(0.2)\n"
        "record('n', 7)",
        parameters=f"release = {str(release)!r}",
    )


def waiting_run(hub, pipeline: str, approvers: str = "data-team") -> int:
    """A run of a fresh gated workflow `pipeline`, once it waits at its gate."""
    alice = hub.user("alice")
    publish_workflow(hub, alice, pipeline, gated(approvers), {"first.ipynb": FIRST, "ship.ipynb": SHIP})
    run_id = start_run(hub, alice, pipeline)
    run = wait_run(hub, alice, run_id, until=lambda r: r["finished"] or r["status"] == "waiting")
    assert run["status"] == "waiting", run
    return run_id


# -- Bug 3: readable statuses ------------------------------------------------------------------

# For each element: its text colour against the first opaque background behind it (white where
# none is, as on the hub's pages), as a WCAG contrast ratio.
CONTRASTS = """els => els.map(el => {
  const rgb = c => (c.match(/[\\d.]+/g) || []).map(Number);
  const luminance = ([r, g, b]) => {
    const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  let back = [255, 255, 255];
  for (let node = el; node && node.nodeType === 1; node = node.parentElement) {
    const c = rgb(getComputedStyle(node).backgroundColor);
    if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) { back = c.slice(0, 3); break; }
  }
  const [a, b] = [luminance(rgb(getComputedStyle(el).color)), luminance(back)];
  return [el.textContent.trim(), Math.round(100 * (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)) / 100];
})"""
READABLE = 4.5  # WCAG AA for normal-size text


def unreadable(locator) -> list:
    return [(text, ratio) for text, ratio in locator.evaluate_all(CONTRASTS) if ratio < READABLE]


def every_status_on(shown) -> list:
    """Each status drawn the way the page's own stylesheet draws it (also those no run here has)."""
    shown.evaluate(
        """statuses => { const p = document.createElement("p"); p.id = "every-status";
           p.innerHTML = statuses.map(s => `<span class="status ${s}">${s}</span>`).join(" ");
           document.body.append(p); }""",
        STATUSES,
    )
    return unreadable(shown.locator("#every-status .status"))


def test_every_status_is_readable_where_runs_are_listed(hub, page):  # noqa: F811
    """A run waiting at its gate (steps succeeded, waiting, pending), one approved and one rejected:
    on the run pages (title and steps), the pipeline pages' run tables and the hub home's summary,
    every status label's text has a contrast of at least 4.5 with what is behind it, and so does
    every status the pages' stylesheet can draw."""
    waiting = waiting_run(hub, "data-team/colour-waiting")
    approved = waiting_run(hub, "data-team/colour-approved")
    rejected = waiting_run(hub, "data-team/colour-rejected")
    alice = hub.user("alice")
    for run_id, decision in ((approved, "approve"), (rejected, "reject")):
        decided = api(hub, alice, "POST", f"runs/{run_id}/steps/review/{decision}", json={"comment": "ok"})
        assert decided.status_code == 200, decided.text
    wait_run(hub, alice, rejected)
    log_in(page, hub.url, "alice", USERS["alice"])

    page.goto(f"{hub.url}{SERVICE}/runs/{waiting}")
    expect(page.locator("#run-status")).to_have_text("waiting")
    expect(page.locator("#steps .status")).to_have_text(["succeeded", "waiting", "pending"])
    assert unreadable(page.locator(".status")) == []
    screenshot(page, "status-waiting-run")
    page.goto(f"{hub.url}{SERVICE}/runs/{approved}")
    expect(page.locator("#step-review-status")).to_have_text("approved")
    assert unreadable(page.locator(".status")) == []
    page.goto(f"{hub.url}{SERVICE}/runs/{rejected}")
    expect(page.locator("#run-status")).to_have_text("rejected")
    expect(page.locator("#steps .status")).to_have_text(["succeeded", "rejected", "skipped"])
    assert unreadable(page.locator(".status")) == []
    assert every_status_on(page) == []
    screenshot(page, "status-rejected-run")

    for name, status in (("colour-waiting", "waiting"), ("colour-rejected", "rejected")):
        page.goto(f"{hub.url}{SERVICE}/p/data-team/{name}")
        expect(page.locator("#runs .status").first).to_have_text(status)
        assert unreadable(page.locator("#runs .status")) == []
    assert every_status_on(page) == []

    page.goto(f"{hub.url}/hub/home")
    summary = page.frame_locator("#pipelines-summary")
    for name, status in (("colour-waiting", "waiting"), ("colour-rejected", "rejected")):
        expect(summary.locator(f'#summary tr[data-pipeline="data-team/{name}"] .status')).to_have_text(status)
    assert unreadable(summary.locator("#summary .status")) == []
    screenshot(page, "status-hub-home")


# -- Bug 4: a page left open shows what a reload shows -----------------------------------------

# What a person reads on the page, times said as their exact instant (a "3 min ago" may turn
# over between two looks) and running durations left out, with the buttons and frames it offers.
SEEN = """() => {
  const copy = document.body.cloneNode(true);
  copy.querySelectorAll("script").forEach(s => s.remove());
  copy.querySelectorAll("time").forEach(t => { t.textContent = t.getAttribute("datetime"); });
  copy.querySelectorAll("#run-duration, .elapsed").forEach(d => { d.textContent = "(elapsed)"; });
  document.body.after(copy); copy.hidden = false;
  const text = copy.innerText; copy.remove();
  return {
    text: text.split("\\n").map(l => l.trim()).filter(Boolean),
    buttons: [...document.querySelectorAll("button")].map(b => b.textContent.trim()),
    frames: [...document.querySelectorAll("iframe")].map(f => f.getAttribute("src")),
  };
}"""


def same_as_reloaded(open_page) -> None:
    """The open page shows what the same page shows when loaded now."""
    fresh = open_page.context.new_page()
    fresh.goto(open_page.url)
    live, loaded = open_page.evaluate(SEEN), fresh.evaluate(SEEN)
    fresh.close()
    assert live == loaded


def test_a_workflow_run_page_left_open_shows_the_gate_as_a_reload_does(hub, page):  # noqa: F811
    """alice opens her run while its first step runs; the step finishes and the run waits at a gate
    of data-team: without a reload the page shows the gate's approver group, the Approve form,
    the first step's duration and outputs, exactly as a reload does."""
    release = make_workdir() / "go"
    alice = hub.user("alice")
    notebooks = {"first.ipynb": held_first(release), "ship.ipynb": SHIP}
    publish_workflow(hub, alice, "data-team/live-gate", gated("data-team"), notebooks)
    run_id = start_run(hub, alice, "data-team/live-gate")
    log_in(page, hub.url, "alice", USERS["alice"])
    page.goto(f"{hub.url}{SERVICE}/runs/{run_id}")
    expect(page.locator("#step-first-status")).to_have_text("running", timeout=120_000)
    page.evaluate("window.notReloaded = true")
    release.write_text("go")

    expect(page.locator("#run-status")).to_have_text("waiting", timeout=120_000)
    expect(page.locator("#step-review")).to_contain_text("data-team")
    expect(page.locator("#approve-review")).to_be_visible()
    expect(page.locator("#step-first")).to_contain_text('"n": 7')
    assert page.evaluate("window.notReloaded === true"), "the page was not reloaded"
    same_as_reloaded(page)
    screenshot(page, "live-gate")


def test_a_run_page_left_open_shows_the_failure_as_a_reload_does(hub, page):  # noqa: F811
    """alice opens a notebook run while it runs; it fails (1/0): without a reload the page shows
    the exit code, the Repair run button and the output, exactly as a reload does."""
    release = make_workdir() / "go"
    alice = hub.user("alice")
    base = f"{hub.api}/pipelines/data-team/live-failure"
    notebook = make_notebook(
        f"import os, time\nwhile not os.path.exists({str(release)!r}):\n    time.sleep(0.2)", "1/0"
    )
    assert alice.api.post(f"{base}/versions", json={"notebook": notebook, "profile": "pyspark"}).ok
    alice.api.put(f"{base}/deployment", json={"version": 1}).raise_for_status()
    run_id = alice.api.post(f"{base}/runs", json={}).json()["id"]
    log_in(page, hub.url, "alice", USERS["alice"])
    page.goto(f"{hub.url}{SERVICE}/runs/{run_id}")
    expect(page.locator("#run-status")).to_have_text("running", timeout=120_000)
    page.evaluate("window.notReloaded = true")
    release.write_text("go")

    expect(page.locator("#run-status")).to_have_text("failed", timeout=120_000)
    expect(page.locator("body")).to_contain_text("exit code 1")
    expect(page.locator("#repair")).to_be_visible()
    expect(page.frame_locator("#output").locator("body")).to_contain_text("ZeroDivisionError")
    assert page.evaluate("window.notReloaded === true"), "the page was not reloaded"
    same_as_reloaded(page)
    screenshot(page, "live-failure")


# -- Bug 6: an approver from another team --------------------------------------------------------


def test_an_approver_from_another_team_finds_her_runs_and_sees_only_her_actions(hub, page):  # noqa: F811
    """carol (ml-leads, not in data-team) finds the run waiting for ml-leads on her Pipelines page
    with its gate and deadline (with its time zone), and on her hub home; she opens it and sees
    Approve and Reject but neither Cancel run nor, once she rejected it, Repair run; alice
    (data-team, not an approver) sees Cancel run and then Repair run, never the decision form."""
    run_id = waiting_run(hub, "data-team/for-carol", approvers="ml-leads")
    log_in(page, hub.url, "carol", USERS["carol"])
    page.goto(f"{hub.url}{SERVICE}/")
    row = page.locator(f'#decisions tr[data-run="{run_id}"]')
    expect(row).to_contain_text("data-team/for-carol")
    expect(row).to_contain_text("review")
    expect(row.locator("time.deadline")).to_have_attribute("title", re.compile(r"\d\d:\d\d.*(UTC|[+-]\d\d)"))
    screenshot(page, "approver-pipelines-page")
    page.goto(f"{hub.url}/hub/home")
    waiting = page.frame_locator("#pipelines-summary").locator("#decisions-waiting")
    expect(waiting).to_contain_text(re.compile(r"\d+ runs? waiting for your decision"))
    waiting.get_by_role("link").click()
    expect(page).to_have_url(re.compile(f"{SERVICE}/$"))
    row.get_by_role("link", name=f"#{run_id}").click()
    expect(page.locator("#approve-review")).to_be_visible()
    expect(page.locator("#reject-review")).to_be_visible()
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
    expect(page.get_by_role("link", name="data-team/for-carol")).to_have_count(0)  # a page she can't open
    screenshot(page, "approver-run-page")
    page.on("dialog", lambda dialog: dialog.accept())
    page.fill("#step-review input[name=comment]", "not this week")
    page.locator("#reject-review").click()
    expect(page.locator("#run-status")).to_have_text("rejected", timeout=60_000)
    expect(page.get_by_role("button", name="Repair run")).to_have_count(0)
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    page.goto(f"{hub.url}{SERVICE}/")
    expect(page.locator(f'#decisions tr[data-run="{run_id}"]')).to_have_count(0)

    page.context.clear_cookies()
    other = waiting_run(hub, "data-team/for-carol-too", approvers="ml-leads")
    log_in(page, hub.url, "alice", USERS["alice"])
    page.goto(f"{hub.url}{SERVICE}/runs/{other}")
    expect(page.get_by_role("button", name="Cancel run")).to_be_visible()
    expect(page.locator("#approve-review")).to_have_count(0)
    page.goto(f"{hub.url}{SERVICE}/runs/{run_id}")
    expect(page.get_by_role("button", name="Repair run")).to_be_visible()
    question = page.locator("#repair-form").get_attribute("data-confirm")
    kept = "keeps first (outputs and files) and runs review, ship again?"
    assert question == f"Repair run #{run_id}: a new run of v1 that {kept}"


# -- Rough edges of a workflow's pages -----------------------------------------------------------


def test_a_workflows_steps_are_listed_and_each_steps_output_has_its_page(hub, page):  # noqa: F811
    """The pipeline page lists the workflow's steps (the gate with its approvers), and its run form
    says which value an upstream output replaces; on the finished run's page each step shows the
    parameters it received (ship got first's n = 7, not the run's default 0), its output opens on
    a page with the hub's navigation and the way back to the run, and the notebook downloads under
    a name that says whose it is."""
    run_id = waiting_run(hub, "data-team/steps-shown")
    alice = hub.user("alice")
    assert api(hub, alice, "POST", f"runs/{run_id}/steps/review/approve", json={}).status_code == 200
    assert wait_run(hub, alice, run_id)["status"] == "succeeded"
    log_in(page, hub.url, "alice", USERS["alice"])
    page.goto(f"{hub.url}{SERVICE}/p/data-team/steps-shown")
    steps = page.locator("#workflow-steps tr[data-step]")
    expect(steps).to_have_count(3)
    expect(page.locator('#workflow-steps tr[data-step="review"]')).to_contain_text("approval by data-team")
    fed = page.locator('label[for="param-ship.first_n"]')  # the run form's value that first's n replaces
    expect(fed).to_contain_text("first.n replaces it when that step records it")
    screenshot(page, "workflow-pipeline-page")

    page.goto(f"{hub.url}{SERVICE}/runs/{run_id}")
    expect(page.locator("#step-ship .received")).to_have_text('{"first_n": 7}')
    expect(page.locator("body")).not_to_contain_text('"ship.first_n": 0')
    page.locator("#step-ship").get_by_role("link", name="output").click()
    expect(page.locator("nav").get_by_role("link", name="Pipelines")).to_be_visible()
    expect(page.frame_locator("#output").locator("body")).to_contain_text("record", timeout=20_000)
    screenshot(page, "workflow-step-output")
    with page.expect_download() as download:
        page.get_by_role("link", name="download the notebook (.ipynb)").click()
    assert download.value.suggested_filename == f"data-team-steps-shown-run{run_id}-ship.ipynb"
    page.locator("#back-to-run").click()
    expect(page.locator("#run-status")).to_have_text("succeeded")
