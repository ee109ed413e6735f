"""Start real hubs with `analysis-hub up` on loopback, for tests and benchmarks.

`start_hub(...)` writes a settings file, sets each user's password with the
real password store, starts `analysis-hub up` as a subprocess (JupyterHub,
configurable-http-proxy and the idle culler, all real) and waits for it.

Environments are built once into `ANALYSIS_HUB_TEST_ROOT/envs` (default
/var/tmp/analysis-hub-tests, a place every Unix user can traverse) and reused
by later runs; the first run of a fresh machine measures the first build.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from analysis_hub.auth import PasswordStore
from hubclient import HubUser

REPO = Path(__file__).resolve().parent.parent
TEST_ROOT = Path(os.environ.get("ANALYSIS_HUB_TEST_ROOT", "/var/tmp/analysis-hub-tests"))
ENVS_DIR = TEST_ROOT / "envs"
PROXY = REPO / "node_modules" / ".bin" / "configurable-http-proxy"
USERS = {"admin": "admin-pw-123", "alice": "alice-pw-123", "bob": "bob-pw-1234", "carol": "carol-pw-123"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningHub:
    def __init__(
        self,
        workdir: Path,
        settings: dict,
        env: dict[str, str] | None = None,
        passwords: dict[str, str] | None = None,
        background_job: bool = False,
    ):
        self.env = {**os.environ, **(env or {})}
        # Started as a non-interactive shell starts `cmd &`: SIGINT and SIGQUIT ignored.
        self.background_job = background_job
        self.passwords = {**USERS, **(passwords or {})}
        self.workdir = workdir
        self.settings = settings
        self.settings_path = workdir / "settings.yaml"
        self.log_path = workdir / "hub.log"
        self.url = f"http://127.0.0.1:{settings['hub']['port']}"
        self.process: subprocess.Popen | None = None

    def start(self, ready_timeout: float = 60) -> RunningHub:
        self.settings_path.write_text(yaml.safe_dump(self.settings))
        with open(self.log_path, "a") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", "analysis_hub.cli", "up", "--config", str(self.settings_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
                env=self.env,
                preexec_fn=_ignore_interrupts if self.background_job else None,
            )
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"hub exited {self.process.returncode}:\n{self.log()[-3000:]}")
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"{self.url}/hub/api/", timeout=2).status_code == 200:
                    return self
            time.sleep(0.3)
        raise AssertionError(f"hub did not answer within {ready_timeout} s:\n{self.log()[-3000:]}")

    def stop(self, servers_too: bool = True) -> None:
        """Stop the hub (and proxy, culler); `servers_too` also ends users' servers."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        if servers_too:
            # cleanup_servers is off by design (servers survive restarts), so end them here.
            for pid in server_pids(self.settings["hub"]["internal_port"]):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def user(self, name: str) -> HubUser:
        return HubUser(self.url, name, self.passwords[name])


def _ignore_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGQUIT, signal.SIG_IGN)


def server_pids(internal_port: int) -> list[int]:
    """Processes whose environment points at this hub's API: its users' servers."""
    marker = f"JUPYTERHUB_API_URL=http://127.0.0.1:{internal_port}/".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                if marker in (proc / "environ").read_bytes():
                    pids.append(int(proc.name))
    return pids


_server_pids = server_pids  # the earlier, private name


def hub_settings(workdir: Path, **overrides) -> dict:
    settings = {
        "data_dir": str(workdir / "data"),
        "catalog": str(REPO / "profiles"),
        "images_dir": str(REPO / "images"),
        "hub": {
            "port": free_port(),
            "internal_port": free_port(),
            "proxy_api_port": free_port(),
            "proxy_command": [str(PROXY)],
            "log_level": "DEBUG",
        },
        "auth": {
            "admins": ["admin"],
            "users": ["alice", "bob", "carol"],
            "groups": {"data-team": ["alice"], "gpu-team": ["bob"]},
        },
        "culler": {"enabled": True, "timeout": 600, "every": 60},
        "pipelines": {"port": free_port()},
        "local": {"envs_dir": str(ENVS_DIR), "homes_dir": str(workdir / "homes")},
    }
    for key, value in overrides.items():
        if isinstance(value, dict):
            settings.setdefault(key, {}).update(value)
        else:
            settings[key] = value
    return settings


def widen_idle_timeouts(catalog: Path, slug: str, shortest: int) -> None:
    """Let a test's copy of the catalog offer `slug` idle timeouts down to `shortest` seconds (its
    max and default stay), so the test can choose one it can wait for instead of relying on a
    profile default such as pyspark's 30 minutes."""
    path = catalog / f"{slug}.yaml"
    profile = yaml.safe_load(path.read_text())
    profile["idle_timeout"] = {**profile["idle_timeout"], "min": shortest}
    path.write_text(yaml.safe_dump(profile))


def make_workdir() -> Path:
    TEST_ROOT.mkdir(parents=True, exist_ok=True)
    os.chmod(TEST_ROOT, 0o755)
    workdir = Path(tempfile.mkdtemp(prefix="hub-", dir=TEST_ROOT))
    os.chmod(workdir, 0o755)  # users' servers must reach their homes below it
    return workdir


def start_hub(
    workdir: Path | None = None,
    env: dict[str, str] | None = None,
    passwords: dict[str, str] | None = None,
    ready_timeout: float = 60,
    background_job: bool = False,
    **overrides,
) -> RunningHub:
    """Start a hub; `passwords` (name -> password) adds users beyond USERS, e.g. a crowd.

    Every user in USERS and `passwords` gets that password in the hub's
    store; declare the extra ones in `auth.users` (or `auth.admins`).
    `ready_timeout`: seconds the hub may take to answer (a big database
    restored at start takes longer). `background_job`: start it as a shell
    script's `analysis-hub up &` does, with SIGINT and SIGQUIT ignored.
    """
    workdir = workdir or make_workdir()
    settings = hub_settings(workdir, **overrides)
    store = PasswordStore(Path(settings["data_dir"]) / "hub" / "passwords.json")
    for name, password in {**USERS, **(passwords or {})}.items():
        store.set_password(name, password)
    return RunningHub(workdir, settings, env, passwords, background_job).start(ready_timeout)
