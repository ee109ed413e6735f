"""A small client for a running hub, as a user would drive it: log in, then REST.

Used by the integration tests and benchmarks. It logs in through the real
login form and mints an API token through the REST API with the session
cookie and its XSRF token, exactly as JupyterHub's own pages do.
"""

from __future__ import annotations

import json
import time

import requests


class HubUser:
    def __init__(self, base_url: str, name: str, password: str):
        self.base_url = base_url.rstrip("/")
        self.name = name
        self.session = requests.Session()
        self.login(password)
        self.token = self._new_token()
        self.api = requests.Session()
        self.api.headers["Authorization"] = f"token {self.token}"

    def login(self, password: str) -> None:
        login_url = f"{self.base_url}/hub/login"
        page = self.session.get(login_url)
        page.raise_for_status()
        xsrf = self.session.cookies.get("_xsrf", "")
        r = self.session.post(
            login_url,
            data={"username": self.name, "password": password, "_xsrf": xsrf},
            allow_redirects=False,
        )
        if r.status_code != 302:
            raise AssertionError(f"login of {self.name} failed: {r.status_code} {r.text[:300]}")

    def _new_token(self) -> str:
        xsrf = self.session.cookies.get("_xsrf", "")
        r = self.session.post(
            f"{self.base_url}/hub/api/users/{self.name}/tokens",
            headers={"X-XSRFToken": xsrf},
            json={"note": "tests", "expires_in": 3600},
        )
        r.raise_for_status()
        return r.json()["token"]

    def url(self, path: str) -> str:
        return f"{self.base_url}/hub/api{path}"

    def model(self) -> dict:
        r = self.api.get(self.url(f"/users/{self.name}"))
        r.raise_for_status()
        return r.json()

    def server_path(self, server: str = "") -> str:
        """The REST path of a server: the default one, or a named one."""
        return f"/users/{self.name}/servers/{server}" if server else f"/users/{self.name}/server"

    def start(self, user_options: dict | None = None, server: str = "") -> requests.Response:
        return self.api.post(self.url(self.server_path(server)), json=user_options or {})

    def spawn_from_form(self, server: str, fields: dict[str, str]) -> requests.Response:
        """Submit the spawn form (as the browser does: login cookie and XSRF token)."""
        xsrf = self.session.cookies.get("_xsrf", "")
        return self.session.post(
            f"{self.base_url}/hub/spawn/{self.name}/{server}",
            data={**fields, "_xsrf": xsrf},
            allow_redirects=False,
        )

    def stop(self) -> None:
        r = self.api.delete(self.url(f"/users/{self.name}/server"))
        assert r.status_code in (202, 204), r.text
        self.wait_stopped()

    def progress_events(self, timeout: float = 1800) -> list[dict]:
        """Follow the spawn's progress event stream to its end."""
        events = []
        with self.api.get(self.url(f"/users/{self.name}/server/progress"), stream=True, timeout=timeout) as r:
            # chunk_size=1: hand over each event as it arrives, not when 512 bytes have.
            for line in r.iter_lines(chunk_size=1, decode_unicode=True):
                if line and line.startswith("data:"):
                    event = json.loads(line[5:])
                    events.append(event)
                    if event.get("ready") or event.get("failed"):
                        break
        return events

    def wait_ready(self, timeout: float = 1800, server: str = "") -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.model()["servers"].get(server)
            if model and model["ready"]:
                return model
            if not model:
                raise AssertionError(f"server {server!r} of {self.name} stopped before becoming ready")
            time.sleep(0.5)
        raise AssertionError(f"server {server!r} of {self.name} not ready after {timeout} s")

    def wait_stopped(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "" not in self.model()["servers"]:
                return
            time.sleep(0.5)
        raise AssertionError(f"server of {self.name} still running after {timeout} s")

    def server_prefix(self, server: str = "") -> str:
        """The proxy path of one of the user's servers (the default one, or a named one)."""
        return f"/user/{self.name}/" + (f"{server}/" if server else "")

    def server_api(self, path: str, method: str = "GET", server: str = "", **kwargs) -> requests.Response:
        """Call the user's own Jupyter server through the proxy with the user's token."""
        return self.api.request(method, f"{self.base_url}{self.server_prefix(server)}api{path}", **kwargs)
