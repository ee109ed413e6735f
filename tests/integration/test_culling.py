"""Idle servers are culled by the real jupyterhub-idle-culler; real work keeps them.

The hub runs with a shortened timeout (20 s, checked every 5 s; servers report
activity every 5 s). "Idle" means no kernel execution, terminal use or file
writes: API reads, such as an open JupyterLab tab's polling, don't count
(the browser version of that case is in test_culling_browser.py).
"""

from __future__ import annotations

import threading
import time

import pytest
from conftest import start_hub
from kernels import run_code, start_kernel

pytestmark = pytest.mark.integration

TIMEOUT, EVERY = 20, 5
CULLED_WITHIN = TIMEOUT + 3 * EVERY + 15  # timeout, a report, a sweep, and slack for a busy machine


@pytest.fixture(scope="module")
def culling_hub():
    running = start_hub(culler={"enabled": True, "timeout": TIMEOUT, "every": EVERY})
    yield running
    running.stop()


def wait_culled(user, within: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within:
        if "" not in user.model()["servers"]:
            return time.monotonic() - started
        time.sleep(1)
    raise AssertionError(f"{user.name}'s server was not culled within {within} s")


def test_idle_server_is_culled(culling_hub):
    """A server nobody uses is stopped after the timeout."""
    alice = culling_hub.user("alice")
    assert alice.start({"profile": "tensorflow"}).status_code in (201, 202)
    alice.wait_ready()
    wait_culled(alice, CULLED_WITHIN)
    assert "Culling server alice" in culling_hub.log() or "Culling" in culling_hub.log()


def test_api_polling_is_not_activity(culling_hub):
    """A client that only reads the server's API (as an open tab polls) doesn't keep it alive."""
    bob = culling_hub.user("bob")
    assert bob.start({"profile": "tensorflow"}).status_code in (201, 202)
    bob.wait_ready()
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            for path in ("/kernels", "/sessions", "/contents", "/terminals"):
                bob.server_api(path)
            stop.wait(2)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        wait_culled(bob, CULLED_WITHIN)
    finally:
        stop.set()


def test_saving_files_is_activity(culling_hub):
    """A client that keeps saving a file (an API write) keeps the server alive past the timeout."""
    admin = culling_hub.user("admin")
    assert admin.start({"profile": "tensorflow"}).status_code in (201, 202)
    admin.wait_ready()
    saving_since = time.monotonic()
    while time.monotonic() - saving_since < TIMEOUT * 2 + 5:
        saved = admin.server_api(
            "/contents/notes.txt", "PUT", json={"type": "file", "format": "text", "content": str(time.time())}
        )
        assert saved.status_code in (200, 201), saved.text
        assert "" in admin.model()["servers"], "a server whose user saves files every 3 s was culled"
        time.sleep(3)
    wait_culled(admin, CULLED_WITHIN)


def test_busy_kernel_is_not_culled(culling_hub):
    """A kernel running code longer than the timeout, with no client, keeps its server."""
    carol = culling_hub.user("carol")
    assert carol.start({"profile": "tensorflow"}).status_code in (201, 202)
    carol.wait_ready()
    kernel = start_kernel(carol)
    busy_for = TIMEOUT * 2 + 10
    worker = threading.Thread(
        target=run_code,
        args=(carol, f"import time; time.sleep({busy_for}); print('done')", kernel),
        kwargs={"timeout": busy_for + 60},
        daemon=True,
    )
    worker.start()
    time.sleep(busy_for - 5)
    assert "" in carol.model()["servers"], "a busy kernel's server was culled"
    worker.join()
    # Once the work is done and nothing else happens, the server is idle again.
    wait_culled(carol, CULLED_WITHIN)
