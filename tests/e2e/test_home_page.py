"""The hub's home page, in headless Chromium: each server's row reads as a person reads it.

One real hub (`analysis-hub up`, local backend, the repository's catalog,
the site's idle timeout 10 minutes). alice's tensorflow server (a profile
without an idle timeout of its own) is listed with the site's timeout named
with its length, and its last activity relative to now ("just now", "3
minutes ago"), with the local date and time on hover, not a UTC timestamp.
"""

from __future__ import annotations

import re

import pytest
from browser import browser, log_in, page, screenshot  # noqa: F401
from conftest import USERS, start_hub
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def home_hub():
    running = start_hub()
    yield running
    running.stop()


def test_a_servers_row_names_its_idle_timeout_and_last_activity_in_words(home_hub, page):  # noqa: F811
    alice = home_hub.user("alice")
    assert alice.start({"profile": "tensorflow"}).status_code in (201, 202)
    try:
        alice.wait_ready(timeout=600)
        log_in(page, home_hub.url, "alice", USERS["alice"])
        page.goto(f"{home_hub.url}/hub/home")
        row = page.locator('#server-profiles tr[data-server-name=""]')
        expect(row.locator(".ah-idle-timeout")).to_have_text("10m (the site's default)")
        activity = row.locator(".ah-activity time")
        expect(activity).to_have_text(re.compile(r"^(just now|\d+ (seconds?|minutes?) ago)$"))
        # The local date and time on hover (Chromium's en-US: "Dec 6, 2026, 10:57 AM").
        expect(activity).to_have_attribute("title", re.compile(r"^\w{3} \d{1,2}, \d{4}, \d{1,2}:\d\d"))
        screenshot(page, "home-servers")
    finally:
        alice.stop()
