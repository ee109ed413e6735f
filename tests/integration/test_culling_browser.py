"""The culler, seen from a real browser: an open JupyterLab tab is not activity; work in it is.

The REST version of these cases is test_culling.py. Here headless Chromium
runs the real JupyterLab, with everything an open tab does on its own
(polling kernels, sessions, contents and terminals, its websockets, saving
its workspace), against a hub whose culler stops servers after 20 s without
real activity, checked every 5 s (servers report activity every 5 s too).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from browser import browser, log_in, open_python_notebook, page, type_and_run  # noqa: F401
from conftest import USERS, start_hub
from playwright.sync_api import expect

pytestmark = pytest.mark.integration

TIMEOUT, EVERY = 20, 5
# The timeout, an activity report, a culler sweep, and slack for a busy machine.
CULLED_WITHIN = TIMEOUT + 3 * EVERY + 25
BUSY_FOR = 60  # seconds a cell keeps its kernel busy
KEPT_FOR = 45  # more than twice the timeout


@pytest.fixture(scope="module")
def culling_hub():
    running = start_hub(culler={"enabled": True, "timeout": TIMEOUT, "every": EVERY})
    yield running
    running.stop()


def open_lab(hub, tab, name: str):
    """Start `name`'s server through the REST API, then open JupyterLab for it in the browser tab."""
    user = hub.user(name)
    assert user.start({"profile": "tensorflow"}).status_code in (201, 202)
    user.wait_ready(timeout=600)
    log_in(tab, hub.url, name, USERS[name])
    tab.goto(f"{hub.url}/user/{name}/lab")
    expect(tab.locator(".jp-LauncherCard").first).to_be_visible(timeout=120_000)
    return user


def server_running(user) -> bool:
    return "" in user.model()["servers"]


def test_open_untouched_lab_tab_does_not_keep_server_alive(culling_hub, page):  # noqa: F811
    """An open but untouched JupyterLab tab does not keep a server alive: the culler stops it."""
    alice = open_lab(culling_hub, page, "alice")
    requests_made: list[str] = []
    page.on("request", lambda request: requests_made.append(f"{request.method} {request.url}"))
    opened, opened_at = time.monotonic(), datetime.now(UTC)
    activity_seen: list[datetime] = []
    while server := alice.model()["servers"].get(""):
        activity_seen.append(datetime.fromisoformat(server["last_activity"]))
        waited = time.monotonic() - opened
        assert waited < CULLED_WITHIN, (
            f"alice's server, with only an untouched JupyterLab tab open, was not culled within"
            f" {CULLED_WITHIN} s\n{_server_requests(culling_hub, 'alice')}"
        )
        assert not page.is_closed()
        page.wait_for_timeout(1000)  # the tab keeps running (polling, websockets) meanwhile
    assert "/user/alice/lab" in page.url, "the tab navigated away before the server was culled"
    # The tab was alive meanwhile: it kept polling its server's API ...
    polls = [r for r in requests_made if r.startswith("GET ") and "/user/alice/api/" in r]
    assert polls, requests_made
    # ... and none of what it did counted as the server's activity.
    assert activity_seen and max(activity_seen) <= opened_at, (activity_seen, opened_at, requests_made)
    assert "Culling server alice" in culling_hub.log() or "Culling" in culling_hub.log()


def test_kernel_working_in_lab_tab_keeps_server_alive(culling_hub, page):  # noqa: F811
    """A JupyterLab tab whose notebook kernel is busy running a cell keeps its server: work is activity."""
    bob = open_lab(culling_hub, page, "bob")
    cell = open_python_notebook(page, "tensorflow").locator(".jp-CodeCell").first
    type_and_run(page, cell, f"import time; time.sleep({BUSY_FOR}); print('done')")
    expect(cell.locator(".jp-InputArea-prompt")).to_have_text("[*]:", timeout=30_000)
    # The kernel is named after the image (images/tensorflow/image.yaml), not "Python 3 (ipykernel)".
    expect(page.locator(".jp-StatusBar-TextItem", has_text="TensorFlow | Busy")).to_be_visible()

    busy_since = time.monotonic()
    while time.monotonic() - busy_since < KEPT_FOR:
        assert server_running(bob), (
            f"bob's server was culled {time.monotonic() - busy_since:.0f} s into a cell that keeps"
            f" its kernel busy for {BUSY_FOR} s\n{_server_requests(culling_hub, 'bob')}"
        )
        page.wait_for_timeout(1000)
    assert "Culling server bob" not in culling_hub.log()
    expect(cell.locator(".jp-InputArea-prompt")).to_have_text("[*]:")  # still working


def test_saving_a_file_in_lab_tab_keeps_server_alive(culling_hub, page):  # noqa: F811
    """A person editing and saving a file in JupyterLab (no kernel at all) is working: the server is kept."""
    carol = open_lab(culling_hub, page, "carol")
    saved = carol.server_api(
        "/contents/notes.txt", "PUT", json={"type": "file", "format": "text", "content": ""}
    )
    assert saved.status_code in (200, 201), saved.text
    saves: list[int] = []
    page.on(
        "response",
        lambda r: saves.append(r.status) if r.request.method == "PUT" and "/api/contents/" in r.url else None,
    )
    page.goto(f"{culling_hub.url}/user/carol/lab/tree/notes.txt")
    editor = page.locator(".jp-FileEditor:not(.lm-mod-hidden) .cm-content")
    expect(editor).to_be_visible(timeout=60_000)
    editor.click()

    editing_since = time.monotonic()
    while time.monotonic() - editing_since < KEPT_FOR:
        assert server_running(carol), (
            f"carol's server was culled {time.monotonic() - editing_since:.0f} s into editing a file"
            f" and saving it every 5 s (saves: {saves})"
        )
        page.keyboard.type(f"line {len(saves)}\n")
        page.keyboard.press("Control+s")
        page.wait_for_timeout(5000)
    assert len(saves) >= KEPT_FOR // 5 - 1 and all(status < 400 for status in saves), saves


def _server_requests(hub, name: str) -> str:
    """The hub log's lines about `name`'s server activity, for a failure message."""
    lines = [
        line
        for line in hub.log().splitlines()
        if f"/user/{name}/" in line or "activity" in line.lower() or "Culling" in line
    ]
    return "\n".join(lines[-80:])
