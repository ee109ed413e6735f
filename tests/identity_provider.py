"""A real OpenID Connect provider on loopback, for the login tests.

`start_provider(workdir, accounts, redirect_uri)` runs `tests/oidc/provider.mjs`
(the npm package `oidc-provider`) with one confidential client for the hub
and the given accounts (`name -> {"password": ..., "groups": [...]}`), and
waits for its discovery document. `IdentityProvider.hub_auth_settings(...)` is the `auth`
section a hub needs to log in through it; the client secret is written to a
0600 file, as a mounted secret would be. `IdentityProvider.log_in(hub_url, name)`
signs an account in to the hub through the provider's own login page without
a browser, and returns a `HubUser` (REST, servers, kernels) for it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

import requests
from harness import REPO, free_port
from hubclient import HubUser

PROVIDER_SCRIPT = REPO / "tests" / "oidc" / "provider.mjs"
CLIENT_ID = "analysis-hub"


class IdentityProvider:
    def __init__(self, workdir: Path, accounts: dict[str, dict], redirect_uri: str, access_token_ttl: int):
        self.workdir = workdir
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.client_secret = secrets.token_urlsafe(24)
        self.config = {
            "port": self.port,
            "clients": [
                {"client_id": CLIENT_ID, "client_secret": self.client_secret, "redirect_uris": [redirect_uri]}
            ],
            "accounts": accounts,
            "access_token_ttl": access_token_ttl,
            "cookie_key": secrets.token_urlsafe(24),
        }
        self.log_path = workdir / "oidc-provider.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> IdentityProvider:
        config_path = self.workdir / "oidc-provider.json"
        config_path.write_text(json.dumps(self.config))
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(
                ["node", str(PROVIDER_SCRIPT), str(config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"oidc-provider exited:\n{self.log_path.read_text()[-2000:]}")
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"{self.issuer}/.well-known/openid-configuration", timeout=2).ok:
                    return self
            time.sleep(0.2)
        raise AssertionError(f"oidc-provider did not answer within {timeout} s")

    def disable(self, name: str) -> None:
        """The company disables the account: it can no longer log in or refresh tokens."""
        requests.post(f"{self.issuer}/test-control/accounts/{name}/disable", timeout=5).raise_for_status()

    def set_groups(self, name: str, groups: list[str]) -> None:
        requests.post(
            f"{self.issuer}/test-control/accounts/{name}/groups", data=json.dumps(groups), timeout=5
        ).raise_for_status()

    def log_in(self, hub_url: str, name: str) -> HubUser:
        """`name` signs in to the hub at the provider (a fresh session: the hub reads the groups
        claim as it is now)."""
        return ProviderLoginUser(hub_url, name, self.config["accounts"][name]["password"])

    def hub_auth_settings(self, **oidc) -> dict:
        """The hub's `auth` settings for logging in through this provider."""
        secret_file = self.workdir / "oidc-client-secret"
        secret_file.write_text(self.client_secret)
        os.chmod(secret_file, 0o600)
        return {
            "type": "oidc",
            "admins": [],
            "users": [],
            "groups": {},
            "oidc": {
                "issuer": self.issuer,
                "client_id": CLIENT_ID,
                "client_secret_file": str(secret_file),
                **oidc,
            },
        }

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(10)


class ProviderLoginUser(HubUser):
    """A hub user who signs in as a browser does: the hub's OAuth login sends it to the provider's
    login page, the form posted there sends it back through the hub's OAuth callback."""

    def login(self, password: str) -> None:
        page = self.session.get(f"{self.base_url}/hub/oauth_login", timeout=30)
        if page.status_code != 200 or "/interaction/" not in page.url:
            raise AssertionError(f"no provider login page for {self.name}: {page.status_code} {page.url}")
        done = self.session.post(
            f"{page.url}/login", data={"username": self.name, "password": password}, timeout=60
        )
        if done.status_code != 200 or not done.url.startswith(f"{self.base_url}/hub/"):
            raise AssertionError(
                f"login of {self.name} through the provider failed: {done.status_code} {done.url}"
                f" {done.text[:300]}"
            )


def start_provider(
    workdir: Path, accounts: dict[str, dict], redirect_uri: str, access_token_ttl: int = 3600
) -> IdentityProvider:
    return IdentityProvider(workdir, accounts, redirect_uri, access_token_ttl).start()
