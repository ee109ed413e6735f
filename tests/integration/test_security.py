"""The security promises, against a real hub, proxy, culler and users' servers.

Each test names the promise (README, "Security") it defends. alice and bob
are ordinary users, each with a running pyspark server; admin is a hub
admin. Promises tested elsewhere: 4 in test_requests.py, 5 in
test_limits_and_isolation.py and tests/unit (pod manifests), the login
promises in tests/e2e/test_oidc_login.py, and the hub restart half of 6 in
test_gpus_and_restart.py.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from analysis_hub.config import CULLER_MODULE, CULLER_SCOPES
from conftest import start_hub
from harness import server_pids

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def secure_hub():
    running = start_hub()
    for name in ("alice", "bob"):
        user = running.user(name)
        assert user.start({"profile": "pyspark"}).status_code in (201, 202)
        user.wait_ready()
    yield running
    running.stop()


def xsrf_headers(user) -> dict:
    return {"X-XSRFToken": user.session.cookies.get("_xsrf", "")}


def test_promise_1_users_cannot_reach_each_others_servers_or_records(secure_hub):
    """1. alice gets 403 on bob's server, with her token and with her login cookie. The hub's
    API refuses her bob's record and starting or stopping his server with the answer it gives
    for a user who does not exist (JupyterHub's 404), so it doesn't even reveal that bob exists.
    Her own work with the same credentials succeeds, and bob's server is untouched."""
    alice, hub = secure_hub.user("alice"), secure_hub.url
    assert alice.server_api("/status").status_code == 200
    assert alice.api.get(f"{hub}/user/bob/api/status").status_code == 403
    assert alice.session.get(f"{hub}/user/bob/api/status").status_code == 403
    for name in ("bob", "nobody-by-this-name"):
        assert alice.api.get(f"{hub}/hub/api/users/{name}").status_code == 404
        assert alice.api.post(f"{hub}/hub/api/users/{name}/server", json={}).status_code == 404
        assert alice.api.delete(f"{hub}/hub/api/users/{name}/server").status_code == 404
    assert alice.api.get(f"{hub}/hub/api/users/alice").status_code == 200
    assert secure_hub.user("bob").model()["servers"][""]["ready"], "bob's server is untouched"


def test_promise_2_cookie_writes_need_the_xsrf_token(secure_hub):
    """2. A write to the REST API authenticated by the login cookie but without the XSRF token
    gets 403 and changes nothing; the same write with the token succeeds."""
    alice, hub = secure_hub.user("alice"), secure_hub.url
    tokens_before = alice.api.get(f"{hub}/hub/api/users/alice/tokens").json()["api_tokens"]
    without = alice.session.post(f"{hub}/hub/api/users/alice/tokens", json={"note": "forged"})
    assert without.status_code == 403, without.text
    assert alice.api.get(f"{hub}/hub/api/users/alice/tokens").json()["api_tokens"] == tokens_before
    stop = alice.session.delete(f"{hub}/hub/api/users/alice/server")
    assert stop.status_code == 403 and alice.model()["servers"][""]["ready"]
    with_token = alice.session.post(
        f"{hub}/hub/api/users/alice/tokens",
        json={"note": "real", "expires_in": 60},
        headers=xsrf_headers(alice),
    )
    assert with_token.status_code == 201, with_token.text


def test_promise_2_servers_refuse_tokens_in_the_url(secure_hub):
    """2. A user's server refuses its owner's valid token in the URL (it leaks into logs and
    history) and accepts the same token in the Authorization header."""
    alice = secure_hub.user("alice")
    in_url = requests.get(
        f"{secure_hub.url}/user/alice/api/status?token={alice.token}", allow_redirects=False
    )
    assert in_url.status_code in (302, 403), in_url.status_code
    if in_url.status_code == 302:
        assert "/hub/" in in_url.headers["Location"], "sent to log in, not let in"
    assert alice.server_api("/status").status_code == 200


def service_token(hub, module: bytes) -> str:
    """A hub-managed service's own token, read from its process (the tests run as root)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        api_url = f"JUPYTERHUB_API_URL=http://127.0.0.1:{hub.settings['hub']['internal_port']}/".encode()
        if module in cmdline and any(v.startswith(api_url) for v in environ):
            token = next(v for v in environ if v.startswith(b"JUPYTERHUB_API_TOKEN="))
            return token.split(b"=", 1)[1].decode()
    raise AssertionError(f"no {module.decode()} process for this hub")


def test_promise_3_the_culler_token_has_exactly_the_scopes_it_needs(secure_hub):
    """3. The idle culler's token carries exactly list:users, read:users:activity, read:servers
    and delete:servers; starting a server, reading tokens or deleting a user gets 403."""
    token = service_token(secure_hub, CULLER_MODULE.encode())
    culler = requests.Session()
    culler.headers["Authorization"] = f"token {token}"
    api = f"{secure_hub.url}/hub/api"
    identity = culler.get(f"{api}/user").json()
    assert identity["kind"] == "service" and identity["name"] == "idle-culler"
    # read:users:name comes with list:users (JupyterHub expands it); nothing else is granted.
    assert sorted(identity["scopes"]) == sorted({*CULLER_SCOPES, "read:users:name"})
    assert culler.get(f"{api}/users").status_code == 200  # what it needs works
    assert culler.post(f"{api}/users/alice/server", json={}).status_code == 403
    assert culler.get(f"{api}/users/alice/tokens").status_code == 403
    assert culler.delete(f"{api}/users/alice").status_code == 403
    assert culler.post(f"{api}/users", json={"usernames": ["eve"]}).status_code == 403
    assert secure_hub.user("alice").model()["servers"][""]["ready"]


def test_promise_3_the_pipelines_service_token_has_no_scopes(secure_hub):
    """3. The pipelines service calls nothing on the hub, so its own token holds no scopes: it can
    identify itself and nothing more (users reach the service with their own logins)."""
    pipelines = requests.Session()
    pipelines.headers["Authorization"] = f"token {service_token(secure_hub, b'analysis_hub.pipelines')}"
    api = f"{secure_hub.url}/hub/api"
    identity = pipelines.get(f"{api}/user").json()
    assert identity["kind"] == "service" and identity["name"] == "pipelines"
    assert identity["scopes"] == []
    for method, path in (("GET", "users"), ("GET", "users/alice"), ("POST", "users/alice/server")):
        assert pipelines.request(method, f"{api}/{path}", json={}).status_code in (403, 404), path
    assert secure_hub.user("alice").model()["servers"][""]["ready"]


def test_promise_6_routes_come_back_after_the_proxy_is_killed(secure_hub):
    """6. When the proxy dies, the hub restarts it and restores users' routes by itself: alice's
    server is reachable again without a hub restart."""
    alice = secure_hub.user("alice")
    hub_pid = secure_hub.process.pid
    proxy_pid_file = Path(secure_hub.settings["data_dir"]) / "hub" / "proxy.pid"
    proxy_pid = int(proxy_pid_file.read_text())
    os.kill(proxy_pid, signal.SIGKILL)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if alice.server_api("/status", timeout=5).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        time.sleep(1)
    else:
        raise AssertionError(f"alice's route did not come back:\n{secure_hub.log()[-3000:]}")
    assert int(proxy_pid_file.read_text()) != proxy_pid, "a new proxy runs"
    assert secure_hub.process.pid == hub_pid and secure_hub.process.poll() is None, "the hub kept running"
    assert secure_hub.user("bob").server_api("/status").status_code == 200


def test_promise_7_bad_input_at_the_edges_gets_a_clear_4xx_and_changes_nothing(secure_hub):
    """7. An oversized form post, malformed JSON, a slug with path characters and unicode user
    names each get a clear 4xx; no user, server or token appears and nothing stops."""
    admin, alice, hub = secure_hub.user("admin"), secure_hub.user("alice"), secure_hub.url
    users_before = sorted(u["name"] for u in admin.api.get(f"{hub}/hub/api/users").json())
    pids_before = sorted(server_pids(secure_hub.settings["hub"]["internal_port"]))

    # A huge spawn form (carol has no server): refused with a short message, nothing started.
    carol = secure_hub.user("carol")
    form = carol.session.post(
        f"{hub}/hub/spawn/carol",
        data={"profile": "x" * 2_000_000, "_xsrf": carol.session.cookies.get("_xsrf")},
    )
    assert 400 <= form.status_code < 500, form.status_code
    assert "is not a profile name" in form.text and len(form.text) < 100_000, "the input is not echoed back"
    assert "" not in carol.model()["servers"]

    malformed = carol.api.post(f"{hub}/hub/api/users/carol/server", data=b"{not json")
    assert malformed.status_code == 400, malformed.text
    huge = carol.api.post(
        f"{hub}/hub/api/users/carol/server", json={"profile": "pyspark", "size": "L" * 10**6}
    )
    assert huge.status_code == 400 and len(huge.text) < 10_000, (huge.status_code, len(huge.text))
    for slug in ("../pyspark", "pyspark/../../etc", "%2e%2e"):
        assert carol.start({"profile": slug}).status_code == 400
    assert "" not in carol.model()["servers"]

    # Unicode and look-alike names: no login, no such user, no user created.
    for name in ("ålice", "alice\u200b", "\u0430lice"):  # a-ring, zero-width space, Cyrillic a
        login_page = requests.Session()
        login_page.get(f"{hub}/hub/login")
        response = login_page.post(
            f"{hub}/hub/login",
            data={"username": name, "password": "alice-pw-123", "_xsrf": login_page.cookies.get("_xsrf")},
            allow_redirects=False,
        )
        assert response.status_code == 403, (name, response.status_code)
        assert admin.api.get(f"{hub}/hub/api/users/{quote(name)}").status_code == 404
        assert admin.api.post(f"{hub}/hub/api/users/{quote(name)}/server", json={}).status_code == 404

    assert sorted(u["name"] for u in admin.api.get(f"{hub}/hub/api/users").json()) == users_before
    assert sorted(server_pids(secure_hub.settings["hub"]["internal_port"])) == pids_before
    assert alice.server_api("/status").status_code == 200
