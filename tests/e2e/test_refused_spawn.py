"""A refused server request changes nothing: no server record left behind, no options kept.

One real hub (`analysis-hub up`, local backend) that lets each user run one
server (`servers.max_per_user: 1`, which also lets each keep one named
server). carol, in headless Chromium, adds a named server from the home page
while her one server runs; its start is refused. bob, over REST, asks for an
idle timeout outside tensorflow's range (10m to 2h) for a new server and for
one he keeps. JupyterHub records a named server before our check runs; the
refusal must take that record (and the refused options) back.
"""

from __future__ import annotations

import re

import pytest
from browser import browser, log_in, page, screenshot  # noqa: F401
from conftest import USERS, start_hub
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

SPAWN_TIMEOUT_S = 600  # a first spawn on a fresh machine builds the tensorflow environment
LIMIT_REFUSAL = "carol already runs 1 server, the most allowed per user"
TIMEOUT_REFUSAL = "Idle timeout 5m is not offered for profile 'tensorflow': pick one from 10m to 2h."


@pytest.fixture(scope="module")
def one_server_hub():
    running = start_hub(servers={"max_per_user": 1})
    yield running
    running.stop()


def servers_kept(user) -> dict:
    """The user's server records, stopped ones included, as the REST API lists them."""
    r = user.api.get(user.url(f"/users/{user.name}?include_stopped_servers=1"))
    r.raise_for_status()
    return r.json()["servers"]


def refusal_log_lines(hub, message: str) -> list[str]:
    return [line for line in hub.log().splitlines() if message in line]


def test_a_refused_named_server_takes_no_slot(one_server_hub, page):  # noqa: F811
    """carol runs her one server; she adds `second` on the home page and starts it from the profile
    form. The form shows the limit's refusal; afterwards the home page and the REST API list no
    `second`, and adding `third` works (it is not refused as over the named-server maximum). The
    hub logs the refusal once, as a warning without a traceback."""
    hub = one_server_hub
    carol = hub.user("carol")
    assert carol.start({"profile": "tensorflow"}).status_code in (201, 202)
    carol.wait_ready(timeout=SPAWN_TIMEOUT_S)

    log_in(page, hub.url, "carol", USERS["carol"])
    page.goto(f"{hub.url}/hub/home")
    page.locator(".new-server-name").fill("second")
    page.locator(".new-server-btn").click()
    start = page.locator('tr[data-server-name="second"] .start-server')
    expect(start).to_be_visible()
    start.click()
    expect(page).to_have_url(re.compile(r"/hub/spawn/carol/second"))
    page.locator('.ah-profile[data-profile="tensorflow"]').click()
    page.get_by_role("button", name="Start").click()
    expect(page.locator(".spawn-error-msg")).to_contain_text(LIMIT_REFUSAL)
    screenshot(page, "refused-spawn-form")

    assert "second" not in servers_kept(carol)
    page.goto(f"{hub.url}/hub/home")
    expect(page.locator(".new-server-name")).to_be_visible()
    expect(page.locator('tr[data-server-name="second"]')).to_have_count(0)
    # The slot is free: adding another named server is not refused as over JupyterHub's maximum.
    page.locator(".new-server-name").fill("third")
    page.locator(".new-server-btn").click()
    expect(page.locator('tr[data-server-name="third"] .start-server')).to_be_visible()
    screenshot(page, "refused-spawn-home")

    logged = refusal_log_lines(hub, LIMIT_REFUSAL)
    assert len(logged) == 1, logged
    assert re.match(r"\[[WI] ", logged[0]), logged
    assert "Exception applying user_options" not in hub.log()


def test_a_refused_idle_timeout_keeps_no_record_and_no_options(one_server_hub):
    """bob asks for a new named server with an idle timeout outside tensorflow's range: 400 naming
    the range, and no record of `fresh`, so asking again gets the same answer (not JupyterHub's
    named-server maximum). A server he keeps (created with 30m) keeps its options when a start
    with 5m is refused."""
    bob = one_server_hub.user("bob")
    bad = {"profile": "tensorflow", "idle_timeout": "5m"}
    for _ in range(2):
        refused = bob.start(bad, server="fresh")
        assert refused.status_code == 400, refused.text
        assert refused.json()["message"] == TIMEOUT_REFUSAL
        assert "fresh" not in servers_kept(bob)

    kept = {"profile": "tensorflow", "idle_timeout": "30m"}
    created = bob.api.put(bob.url("/users/bob/servers/quick"), json={"user_options": kept})
    assert created.status_code == 201, created.text
    refused = bob.start(bad, server="quick")
    assert refused.status_code == 400 and refused.json()["message"] == TIMEOUT_REFUSAL
    assert servers_kept(bob)["quick"]["user_options"] == kept
    # Each of the three refusals is one line of the hub's log.
    assert len(refusal_log_lines(one_server_hub, TIMEOUT_REFUSAL)) == 3
    assert "Exception applying user_options" not in one_server_hub.log()
