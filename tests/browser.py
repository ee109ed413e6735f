"""Headless Chromium for the browser tests: the system's Debian build, driven by Playwright.

The browser is Debian's `chromium` package (`apt-get install chromium`), not
one that `playwright install` downloads. Tests that need it take the `page`
fixture (import it, with `browser`, into the test module); without Chromium
they are skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("ANALYSIS_HUB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).parent / "e2e" / "screenshots"


def launch(playwright):
    """Start headless Chromium from CHROMIUM."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh browser context (no cookies) and page; closed after the test."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    yield page
    context.close()


def log_in(page, hub_url: str, name: str, password: str) -> None:
    """Log in through the hub's login form, as a person would."""
    page.goto(f"{hub_url}/hub/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", password)
    page.click("#login_submit, input[type=submit], button[type=submit]")
    page.wait_for_url(lambda url: "/hub/login" not in url, timeout=30_000)


def open_python_notebook(page, image: str):
    """Create a notebook from JupyterLab's launcher with the kernel named after `image` (its
    image.yaml display_name, not "Python 3 (ipykernel)"); return its panel once the kernel is idle."""
    from analysis_hub.images import discover_images
    from playwright.sync_api import expect

    kernel = discover_images(Path(__file__).resolve().parent.parent / "images")[image].display_name
    card = page.locator('.jp-LauncherCard[data-category="Notebook"]', has_text=kernel)
    expect(card).to_be_visible(timeout=120_000)
    card.click()
    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    expect(panel).to_be_visible(timeout=60_000)
    # The status bar names the kernel and its state once the session has a kernel
    # (before that, Shift+Enter clears the cell's execution instead of running it).
    status = page.locator(".jp-StatusBar-TextItem", has_text=f"{kernel} | Idle")
    expect(status).to_be_visible(timeout=120_000)
    return panel


def type_and_run(page, cell, code: str) -> None:
    """Type `code` into a notebook cell as a person would and run it with Shift+Enter."""
    from playwright.sync_api import expect

    editor = cell.locator(".cm-content")
    editor.click()
    page.keyboard.type(code)
    expect(editor).to_have_text(code)
    page.keyboard.press("Shift+Enter")


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path
