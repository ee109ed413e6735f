"""Deploying a never-deployed pipeline from its page, in headless Chromium (issue 26, bug 2).

alice publishes a workflow with the command line as the README shows it, without
`--deploy`: the pipeline exists, nothing runs. Its page must offer a way to deploy
it that works (a rollback can't: there is nothing to roll back). An empty Pipelines
page names both ways to publish: the command line and JupyterLab.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from browser import browser, log_in, page, screenshot  # noqa: F401
from conftest import REPO, USERS, make_workdir, start_hub
from notebooks import make_notebook
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

CLI = Path(sys.executable).parent / "analysis-hub"


@pytest.fixture(scope="module")
def hub():
    running = start_hub()
    yield running
    running.stop()


def publish_with_the_cli(hub, folder: Path) -> subprocess.CompletedProcess:
    """`analysis-hub pipelines publish flow/pipeline.yaml --team data-team`, as alice."""
    alice = hub.user("alice")
    return subprocess.run(
        [str(CLI), "pipelines", "publish", str(folder / "pipeline.yaml"), "--team", "data-team"],
        env={
            **os.environ,
            "ANALYSIS_HUB_PIPELINES_URL": f"{hub.url}/services/pipelines/",
            "JUPYTERHUB_API_TOKEN": alice.token,
        },
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_empty_pipelines_page_names_jupyterlab_and_the_cli(hub, page):  # noqa: F811
    """bob's teams have no pipelines: the page names both ways to publish one, JupyterLab's
    "Publish as pipeline…" and the command line."""
    log_in(page, hub.url, "bob", USERS["bob"])
    page.goto(f"{hub.url}/services/pipelines/")
    empty = page.locator("#no-pipelines")
    expect(empty).to_contain_text("Publish as pipeline…")
    expect(empty).to_contain_text("analysis-hub pipelines publish")
    screenshot(page, "pipelines-empty")


def test_a_workflow_published_without_deploy_is_deployed_from_its_page(hub, page):  # noqa: F811
    """A workflow published with the CLI without --deploy: its page says "Not deployed." and offers
    a Deploy form (version, trigger, schedule, time zone), no rollback; the form deploys it, and
    the page then shows the active version on its schedule, and Run now. The CLI said that
    nothing runs yet."""
    folder = make_workdir() / "flow"
    folder.mkdir()
    step = make_notebook("print('rows', rows)", parameters="rows = 3")
    for notebook in ("prepare.ipynb", "report.ipynb"):
        (folder / notebook).write_text(json.dumps(step))
    spec = {
        "steps": [
            {"name": "prepare", "notebook": "prepare.ipynb", "profile": "pyspark"},
            {"name": "report", "notebook": "report.ipynb", "profile": "pyspark", "depends_on": ["prepare"]},
        ]
    }
    (folder / "pipeline.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    published = publish_with_the_cli(hub, folder)
    assert published.returncode == 0, published.stderr
    assert "published data-team/flow v1" in published.stdout

    log_in(page, hub.url, "alice", USERS["alice"])
    page.goto(f"{hub.url}/services/pipelines/p/data-team/flow")
    expect(page.locator("#deployment")).to_contain_text("Not deployed.")
    expect(page.locator("#versions form.rollback")).to_have_count(0)
    form = page.locator("#deploy-form")
    expect(form.locator("select[name=version]")).to_have_value("1")
    form.locator("select[name=trigger]").select_option("cron")
    form.locator("input[name=schedule]").fill("0 6 * * 1-5")
    form.locator("input[name=timezone]").fill("Europe/Paris")
    screenshot(page, "pipeline-deploy-form")
    form.get_by_role("button", name="Deploy").click()
    expect(page.locator("#deployment")).to_contain_text("Active: v1, cron 0 6 * * 1-5 (Europe/Paris)")
    expect(page.locator("#run-now")).to_be_visible()
    screenshot(page, "pipeline-deployed-from-page")
    described = hub.user("alice").api.get(f"{hub.url}/services/pipelines/api/pipelines/data-team/flow")
    assert described.json()["active_version"] == 1
    assert "not deployed: nothing runs until you deploy it" in published.stdout, published.stdout


def test_the_publish_help_names_pipeline_yaml_and_deploy():
    """`analysis-hub pipelines publish --help` says it takes a notebook or a pipeline.yaml and that
    nothing is deployed without --deploy."""
    helptext = subprocess.run(
        [str(CLI), "pipelines", "publish", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "NOTEBOOK|pipeline.yaml" in helptext
    assert "nothing is deployed without --deploy" in " ".join(helptext.lower().split())
