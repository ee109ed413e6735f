"""Team folders follow the company's groups: membership given at the identity provider (OIDC).

Local backend, as root with a Unix user per hub user. One hub for the module
logs users in through a real OpenID Connect provider (the npm package
`oidc-provider`, tests/oidc/provider.mjs) on loopback; the hub's groups are
the provider's `groups` claim at each login (OAuthenticator's
`manage_groups`, as `config.py` sets it for `auth.type: oidc`). Promise:
a user the provider puts in a team reads the team's folder after signing in
again and respawning, and not before, checked with code running in his
server as his own Unix user. (test_team_folders.py covers the same promises
with the hub's own groups; this module covers the provider's.)
"""

from __future__ import annotations

import json

import pytest
from conftest import make_workdir, start_hub
from harness import free_port
from identity_provider import start_provider
from kernels import run_code
from test_team_folders import PROBE, READ, WRITE, started

pytestmark = pytest.mark.integration

ACCOUNTS = {
    "alice": {"password": "alice-sso-pw", "groups": ["data-team"]},
    "bob": {"password": "bob-sso-pw", "groups": ["gpu-team"]},
}
WHO = "import os, pwd; print(pwd.getpwuid(os.getuid()).pw_name)"
DENIED = {"link": False, "list_teams": "denied", "list": "denied", "read": "denied"}


@pytest.fixture(scope="module")
def sso_teams_hub():
    workdir = make_workdir()
    port = free_port()
    provider = start_provider(workdir, ACCOUNTS, f"http://127.0.0.1:{port}/hub/oauth_callback")
    try:
        auth = provider.hub_auth_settings(allowed_groups=["data-team", "gpu-team"])
        running = start_hub(workdir, hub={"port": port}, auth=auth, teams={"data-team": {}, "gpu-team": {}})
        running.provider = provider
        yield running
        running.stop()
    finally:
        provider.stop()


def test_a_team_added_at_the_provider_opens_its_folder_after_login_and_respawn(sso_teams_hub):
    """alice (data-team at the provider) writes ~/teams/data-team/x.csv; bob (gpu-team) can't list
    or read it from his server. The provider puts bob in data-team: after he signs in again and
    respawns, he reads alice's file and lists the folder, as his own Unix user."""
    hub, provider = sso_teams_hub, sso_teams_hub.provider
    alice, bob = provider.log_in(hub.url, "alice"), provider.log_in(hub.url, "bob")
    assert (alice.model()["groups"], bob.model()["groups"]) == (["data-team"], ["gpu-team"])
    alice, bob = started(alice), started(bob)
    try:
        assert run_code(alice, WRITE).strip().endswith("/teams/data-team/x.csv")
        folder = run_code(
            alice, "import os; print(os.path.realpath(os.path.expanduser('~/teams/data-team')))"
        )
        folder = folder.strip()
        assert run_code(bob, WHO).strip() == "jupyter-bob"
        assert json.loads(run_code(bob, PROBE.format(folder=folder))) == DENIED
        bob.stop()

        provider.set_groups("bob", ["gpu-team", "data-team"])
        bob = provider.log_in(hub.url, "bob")
        assert sorted(bob.model()["groups"]) == ["data-team", "gpu-team"]
        started(bob)
        assert run_code(bob, WHO).strip() == "jupyter-bob"
        assert run_code(bob, READ) == "a,b\n1,2\n\n"
        assert json.loads(run_code(bob, PROBE.format(folder=folder))) == {
            "link": True,
            "list_teams": "denied",
            "list": "allowed",
            "read": "allowed",
        }
    finally:
        for user in (alice, bob):
            if "" in user.model()["servers"]:
                user.stop()
