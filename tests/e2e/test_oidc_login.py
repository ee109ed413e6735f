"""Login with the company's identity provider, in headless Chromium.

A real OpenID Connect provider (the npm package `oidc-provider`, see
tests/oidc/provider.mjs) runs on loopback with test accounts and a `groups`
claim; the hub logs in through it with OAuthenticator, as in production.
Every test logs in through the provider's own login page.

Accounts: alice and carol (data-team), bob (gpu-team), ada (platform-admins,
the admin group), mallory (contractors, not allowed). The catalog here gives
pyspark to data-team, pytorch to gpu-team and tensorflow to both.
"""

from __future__ import annotations

import re
import shutil
import time

import pytest
import yaml
from browser import browser, page, screenshot  # noqa: F401
from conftest import REPO, make_workdir, start_hub
from harness import free_port
from identity_provider import start_provider
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

SPAWN_TIMEOUT_MS = 10 * 60_000  # a first spawn builds the tensorflow environment (~1.5 min)
REFRESH_INTERVAL = 5
ACCOUNTS = {
    "alice": {"password": "alice-sso-pw", "groups": ["data-team"]},
    "carol": {"password": "carol-sso-pw", "groups": ["data-team"]},
    "bob": {"password": "bob-sso-pw", "groups": ["gpu-team"]},
    "ada": {"password": "ada-sso-pw", "groups": ["platform-admins"]},
    "mallory": {"password": "mallory-sso-pw", "groups": ["contractors"]},
}
PROFILE_GROUPS = {"pyspark": ["data-team"], "pytorch": ["gpu-team"], "tensorflow": ["data-team", "gpu-team"]}


@pytest.fixture(scope="module")
def sso_hub():
    workdir = make_workdir()
    catalog = workdir / "catalog"
    shutil.copytree(REPO / "profiles", catalog)
    for slug, groups in PROFILE_GROUPS.items():
        profile = yaml.safe_load((catalog / f"{slug}.yaml").read_text())
        profile["allowed_groups"] = groups
        (catalog / f"{slug}.yaml").write_text(yaml.safe_dump(profile))
    port = free_port()
    provider = start_provider(workdir, ACCOUNTS, f"http://127.0.0.1:{port}/hub/oauth_callback")
    auth = provider.hub_auth_settings(
        allowed_groups=["data-team", "gpu-team", "platform-admins"],
        admin_groups=["platform-admins"],
        refresh_interval=REFRESH_INTERVAL,
        display_name="Company SSO",
    )
    running = start_hub(workdir, hub={"port": port}, auth=auth, catalog=str(catalog))
    running.provider = provider
    yield running
    running.stop()
    provider.stop()


def sso_log_in(tab, hub, name: str) -> None:
    """Start at the hub, sign in on the provider's own tab, come back to the hub."""
    tab.goto(f"{hub.url}/hub/login")
    tab.get_by_role("button", name="Sign in with Company SSO").click()
    expect(tab).to_have_url(re.compile(rf"^{re.escape(hub.provider.issuer)}/interaction/"))
    expect(tab).to_have_title("Company sign-in")
    tab.fill("input[name=username]", name)
    tab.fill("input[name=password]", ACCOUNTS[name]["password"])
    tab.click("#sign-in")
    tab.wait_for_url(lambda url: url.startswith(hub.url), timeout=30_000)


def api_get(tab, hub, path: str):
    """A GET to the hub's REST API with the browser's login cookie (as the hub's own pages do)."""
    return tab.request.get(f"{hub.url}/hub/api{path}")


def offered_profiles(tab) -> set[str]:
    cards = tab.locator(".ah-profile")
    expect(cards.first).to_be_visible()
    return set(cards.evaluate_all("cards => cards.map(c => c.dataset.profile)"))


def test_data_team_member_logs_in_and_sees_the_data_teams_profiles(sso_hub, page):  # noqa: F811
    """A data-team member signs in at the provider and is offered pyspark and tensorflow, not pytorch."""
    page.goto(f"{sso_hub.url}/hub/")
    expect(page).to_have_url(re.compile(r"/hub/login"))
    sso_log_in(page, sso_hub, "alice")
    expect(page).to_have_url(re.compile(r"/hub/spawn(/alice)?$"))
    assert offered_profiles(page) == {"pyspark", "tensorflow"}
    groups = api_get(page, sso_hub, "/users/alice").json()["groups"]
    assert groups == ["data-team"], "hub groups come from the provider's groups claim"
    screenshot(page, "sso-spawn-form-data-team")


def test_gpu_team_member_sees_pytorch(sso_hub, page):  # noqa: F811
    """A gpu-team member is offered pytorch (and tensorflow), not pyspark."""
    sso_log_in(page, sso_hub, "bob")
    expect(page).to_have_url(re.compile(r"/hub/spawn(/bob)?$"))
    assert offered_profiles(page) == {"pytorch", "tensorflow"}


def test_user_outside_the_allowed_groups_gets_a_clear_403_and_no_server(sso_hub, page):  # noqa: F811
    """mallory (contractors) gets a 403 page saying which groups may log in; no user or server is created."""
    responses = []
    page.on("response", lambda r: responses.append(r) if "/hub/oauth_callback" in r.url else None)
    sso_log_in(page, sso_hub, "mallory")
    assert responses and responses[-1].status == 403
    body = page.locator("body")
    expect(body).to_contain_text("403")
    expect(body).to_contain_text("mallory may not use this hub")
    expect(body).to_contain_text("data-team, gpu-team, platform-admins")
    screenshot(page, "sso-403")
    home = page.request.get(f"{sso_hub.url}/hub/home", max_redirects=0)
    assert home.status == 302, "mallory must have no session"


def test_admin_group_member_reaches_the_admin_page(sso_hub, page):  # noqa: F811
    """A platform-admins member is a hub admin and reaches the admin page; mallory never became a user."""
    sso_log_in(page, sso_hub, "ada")
    response = page.goto(f"{sso_hub.url}/hub/admin")
    assert response.status == 200
    expect(page).to_have_url(re.compile(r"/hub/admin"))
    assert api_get(page, sso_hub, "/users/ada").json()["admin"] is True
    users = {u["name"] for u in api_get(page, sso_hub, "/users").json()}
    assert "mallory" not in users and "alice" in users
    assert api_get(page, sso_hub, "/users/mallory").status == 404


def test_logout_ends_the_session_at_the_hub(sso_hub, page):  # noqa: F811
    """After logout, the hub's pages ask for a login again."""
    sso_log_in(page, sso_hub, "alice")
    assert page.request.get(f"{sso_hub.url}/hub/home", max_redirects=0).status == 200
    page.goto(f"{sso_hub.url}/hub/logout")
    page.goto(f"{sso_hub.url}/hub/home")
    expect(page).to_have_url(re.compile(r"/hub/login"))
    assert page.request.get(f"{sso_hub.url}/hub/home", max_redirects=0).status == 302


def test_group_change_at_the_provider_applies_at_next_login(sso_hub, browser):  # noqa: F811
    """alice moves to gpu-team at the provider; her next login offers pytorch and no longer pyspark."""
    sso_hub.provider.set_groups("alice", ["gpu-team"])
    try:
        context = browser.new_context()
        page = context.new_page()
        sso_log_in(page, sso_hub, "alice")
        assert offered_profiles(page) == {"pytorch", "tensorflow"}
        assert api_get(page, sso_hub, "/users/alice").json()["groups"] == ["gpu-team"]
        context.close()
    finally:
        sso_hub.provider.set_groups("alice", ["data-team"])


def test_disabled_account_loses_access_within_the_refresh_interval(sso_hub, page):  # noqa: F811
    """carol's account is disabled at the provider: within the refresh interval (plus the server's
    token cache, set to the same interval) both the hub and her running server refuse her browser,
    and she cannot sign in again."""
    sso_log_in(page, sso_hub, "carol")
    page.locator('.ah-profile[data-profile="tensorflow"]').click()
    page.get_by_role("button", name="Start").click()
    page.wait_for_url(re.compile(r"/user/carol/lab"), timeout=SPAWN_TIMEOUT_MS)
    server_status = f"{sso_hub.url}/user/carol/api/status"
    assert page.request.get(server_status).status == 200

    sso_hub.provider.disable("carol")
    disabled_at = time.monotonic()
    hub_refused = server_refused = None
    while time.monotonic() - disabled_at < 6 * REFRESH_INTERVAL and not (hub_refused and server_refused):
        if hub_refused is None and page.request.get(f"{sso_hub.url}/hub/home", max_redirects=0).status == 302:
            hub_refused = time.monotonic() - disabled_at
        if server_refused is None and page.request.get(server_status, max_redirects=0).status != 200:
            server_refused = time.monotonic() - disabled_at
        time.sleep(0.5)
    assert hub_refused is not None, "the hub still accepts a disabled account's session"
    assert server_refused is not None, "carol's server still accepts her browser"
    print(f"hub refused after {hub_refused:.1f} s, server after {server_refused:.1f} s")

    page.goto(f"{sso_hub.url}/hub/login")
    page.get_by_role("button", name="Sign in with Company SSO").click()
    page.fill("input[name=username]", "carol")
    page.fill("input[name=password]", ACCOUNTS["carol"]["password"])
    page.click("#sign-in")
    expect(page.locator("#error")).to_have_text("Unknown user or wrong password.")


def test_login_sessions_survive_a_hub_restart(sso_hub, page):  # noqa: F811
    """After a hub restart, a signed-in browser is still signed in, and the hub can still re-check
    the account at the provider (its tokens, encrypted in the database, still decrypt)."""
    sso_log_in(page, sso_hub, "bob")
    sso_hub.stop(servers_too=False)
    sso_hub.start()
    time.sleep(REFRESH_INTERVAL + 1)  # the next request re-checks bob at the provider
    assert page.request.get(f"{sso_hub.url}/hub/home", max_redirects=0).status == 200
    assert "Refreshing auth for bob" in sso_hub.log()
    assert "User bob has stale auth info" not in sso_hub.log()
