"""A person's first session, in headless Chromium: log in, pick a profile, wait, compute.

Drives the real pages end to end: the hub's login form, the profile spawn
form rendered from the catalog, the spawn-pending page with its progress
stream, and JupyterLab served by the profile's environment, where a notebook
runs TensorFlow.
"""

from __future__ import annotations

import re

import pytest
from browser import browser, log_in, open_python_notebook, page, screenshot, type_and_run  # noqa: F401
from conftest import USERS, start_hub
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

SPAWN_TIMEOUT_MS = 10 * 60_000  # a first spawn builds the tensorflow environment (~1.5 min)
CPU_TORCH = {"profile": "pytorch", "accelerator": "cpu"}  # no GPU on this machine
CODE = "import tensorflow as tf; print(tf.reduce_sum(tf.constant([1, 2, 3])).numpy() + 1)"

# Records each progress message as the spawn-pending page adds it to its event
# log, before the page reloads into the server (a fast spawn reloads at once).
_WATCH_PROGRESS = """
(() => {
  const seen = new WeakSet();
  const report = () => {
    for (const el of document.querySelectorAll('#progress-log .progress-log-event')) {
      if (!seen.has(el)) { seen.add(el); window.reportProgress(el.textContent.trim()); }
    }
  };
  const watch = () => {
    report();
    new MutationObserver(report).observe(document.body, {childList: true, subtree: true});
  };
  if (document.body) watch(); else document.addEventListener('DOMContentLoaded', watch);
})();
"""


@pytest.fixture(scope="module")
def spawn_hub():
    running = start_hub()
    yield running
    running.stop()


def test_log_in_pick_profile_and_run_tensorflow(spawn_hub, page):  # noqa: F811
    """A user logs in, sees the profiles this machine can run, starts TensorFlow, and computes in JupyterLab.

    Defends: the login form works; the spawn form shows every profile with its
    image and resources and disables the GPU options a GPU-less machine can't
    serve (leaving CPU-only selectable); the spawn page reports progress while
    the profile starts; the user lands in JupyterLab and a notebook's Python
    kernel imports TensorFlow and computes with it.
    """
    progress: list[str] = []
    visited: list[str] = []
    page.expose_function("reportProgress", lambda message: progress.append(message))
    page.add_init_script(_WATCH_PROGRESS)
    page.on("framenavigated", lambda frame: visited.append(frame.url) if frame == page.main_frame else None)

    # Log in through the form; a user without a server lands on the spawn form.
    page.goto(f"{spawn_hub.url}/hub/")
    expect(page).to_have_url(re.compile(r"/hub/login"))
    log_in(page, spawn_hub.url, "alice", USERS["alice"])
    expect(page).to_have_url(re.compile(r"/hub/spawn(/alice)?$"))

    # The three profiles of the catalog, each with its image and resources.
    cards = page.locator(".ah-profile")
    expect(cards).to_have_count(3)
    expected = {
        "pyspark": ("PySpark", "CPU 1 CPU guaranteed, up to 2 CPUs · memory 2 GiB guaranteed, up to 4 GiB"),
        # No GPU here: the CPU-only option is preselected and the card shows its resources.
        "pytorch": (
            "PyTorch (GPU)",
            "CPU 1 CPU guaranteed, up to 2 CPUs · memory 2 GiB guaranteed, up to 4 GiB",
        ),
        "tensorflow": (
            "TensorFlow",
            "CPU 1 CPU guaranteed, up to 2 CPUs · memory 2 GiB guaranteed, up to 6 GiB",
        ),
    }
    for slug, (title, resources) in expected.items():
        card = page.locator(f'.ah-profile[data-profile="{slug}"]')
        expect(card.locator("h4")).to_have_text(title)
        expect(card.locator(".ah-facts").first).to_contain_text(f"image {slug}")
        expect(card.locator(".ah-facts").first).to_contain_text(resources)
        expect(card.locator(f'input[type=radio][value="{slug}"]')).to_be_enabled()

    # PyTorch's GPU options are offered but disabled, with the reason; CPU only is selectable.
    accelerator = page.locator('select[name="choice.pytorch.accelerator"]')
    for option in ("gpu", "gpu2"):
        opt = accelerator.locator(f'option[value="{option}"]')
        expect(opt).to_be_disabled()
        expect(opt).to_contain_text("this machine has none")
    expect(accelerator.locator('option[value="cpu"]')).to_be_enabled()
    expect(accelerator).to_have_value("cpu")
    accelerator.select_option("cpu")  # a person can pick it
    expect(accelerator).to_have_value("cpu")

    # A card's resources follow its drop-down.
    size, pyspark = (
        page.locator('select[name="choice.pyspark.size"]'),
        page.locator('[data-profile="pyspark"]'),
    )
    size.select_option("large")
    large = "CPU 2 CPUs guaranteed, up to 4 CPUs · memory 8 GiB guaranteed, up to 16 GiB"
    expect(pyspark.locator(".ah-resources")).to_have_text(large)
    size.select_option("medium")
    expect(pyspark.locator(".ah-resources")).to_contain_text("memory 2 GiB guaranteed, up to 4 GiB")
    # A Spark session idles 30 minutes unless the analyst picks otherwise (profiles/pyspark.yaml).
    expect(page.locator('select[name="idle_timeout.pyspark"] option:checked')).to_have_text("30m")
    screenshot(page, "spawn-form")

    # Pick TensorFlow and start.
    page.locator('.ah-profile[data-profile="tensorflow"]').click()
    expect(page.locator('input[name=profile][value="tensorflow"]')).to_be_checked()
    page.get_by_role("button", name="Start").click()

    # The spawn-pending page shows the spawn's progress, then hands over to JupyterLab.
    page.wait_for_url(re.compile(r"/user/alice/lab"), timeout=SPAWN_TIMEOUT_MS)
    assert any("/hub/spawn-pending/alice" in url for url in visited), visited
    assert any(m.startswith("Starting profile TensorFlow") for m in progress), progress
    assert any("Starting the Jupyter server" in m for m in progress), progress

    # JupyterLab is up: the launcher names the kernel after the profile's image, and a new
    # notebook from it gets that kernel.
    panel = open_python_notebook(page, "tensorflow")
    cell = panel.locator(".jp-CodeCell").first
    type_and_run(page, cell, CODE)

    # stdout, apart from TensorFlow's own start-up logging on stderr.
    stdout = cell.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stdout"]')
    expect(stdout).to_have_text("7", timeout=180_000)
    expect(
        cell.locator('[data-mime-type="application/vnd.jupyter.stderr"]', has_text="Traceback")
    ).to_have_count(0)
    expect(cell.locator(".jp-InputArea-prompt")).to_have_text("[1]:")
    path = screenshot(page, "jupyterlab-tensorflow")
    assert path.stat().st_size > 0


def test_the_launcher_names_each_profiles_kernel(spawn_hub, page):  # noqa: F811
    """JupyterLab's launcher offers a pyspark server's and a pytorch server's kernel under their
    image's name ("PySpark (Spark 4, Java 17)", "PyTorch (CUDA)", from images/*/image.yaml), not
    "Python 3 (ipykernel)", and a notebook opened from that card runs on that kernel."""
    bob = spawn_hub.user("bob")
    servers = {"spark": ({"profile": "pyspark"}, "pyspark"), "torch": (CPU_TORCH, "pytorch")}
    for server, (options, _) in servers.items():
        assert bob.start(options, server=server).status_code in (201, 202)
    try:
        for server in servers:
            bob.wait_ready(server=server, timeout=SPAWN_TIMEOUT_MS / 1000)
        log_in(page, spawn_hub.url, "bob", USERS["bob"])
        for server, (_, image) in servers.items():
            # ?reset: the servers share bob's home, and with it JupyterLab's saved layout.
            page.goto(f"{spawn_hub.url}/user/bob/{server}/lab?reset")
            open_python_notebook(page, image)  # finds the card by the image's display name
            screenshot(page, f"launcher-kernel-{image}")
    finally:
        for server in servers:
            bob.api.delete(bob.url(f"/users/bob/servers/{server}"))
