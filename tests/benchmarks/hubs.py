"""The two hubs every benchmark compares: analysis-hub and a vanilla JupyterHub.

Contract: `start_analysis_hub(...)` and `start_vanilla_hub(...)` each start a
real hub on loopback (free ports, a folder of its own under the test root)
and return a `HubUnderTest`: `.kind`, `.url`, `.hub_pid`, `.user(name)` (a
`HubUser` logged in through the login form), `.log()` and `.stop()`, which
ends the hub, its proxy and services, every user server, removes the Unix
users the hub created and the folder. A hub that fails to come up is
stopped the same way before the error is raised.

- analysis-hub is started as users start it, `analysis-hub up` with the
  test suite's settings (tests/harness.py), INFO logging as deployed, and
  the machine's defaults: as root a Unix user per hub user and cgroups.
- The vanilla hub is `jupyterhub -f <file>` with a plain config written
  here: JupyterHub's SimpleLocalProcessSpawner (vanilla_spawner.py) running
  the same environment's jupyterhub-singleuser and JupyterLab, the same
  configurable-http-proxy and start timeout, JupyterHub's own
  SharedPasswordAuthenticator, and the same idle-culler service and role
  when asked for one.

`extra_config` (Python lines JupyterHub reads last, e.g. the culling
benchmark's stand-in spawner) and `prepare(db_path)` (fills the database
before the hub starts) serve the culling benchmark. This folder is on both
hubs' PYTHONPATH, so they can import the benchmark's spawners.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil
import requests
import yaml
from analysis_hub.auth import PasswordStore
from analysis_hub.catalog import load_catalog
from analysis_hub.config import CULLER_SCOPES, CULLER_SERVICE
from analysis_hub.runtime.environments import READY_MARKER, EnvironmentBuilder
from analysis_hub.runtime.unix_users import system_username
from analysis_hub.settings import load_settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: harness, hubclient

import harness
from hubclient import HubUser

BENCH_DIR = Path(__file__).resolve().parent
ANALYSIS, VANILLA = "analysis-hub", "vanilla"
ADMIN_PASSWORD = harness.USERS["admin"]
START_TIMEOUT = 1800  # analysis-hub's local.start_timeout default; the vanilla hub gets the same
VANILLA_USER_PASSWORD = "vanilla-user-pw-1"
VANILLA_ADMIN_PASSWORD = "vanilla-admin-password-0123456789ab"  # JupyterHub asks for 32+ characters

Prepare = Callable[[Path], None]


@dataclass
class HubUnderTest:
    kind: str
    url: str
    workdir: Path
    internal_port: int
    passwords: dict[str, str]
    unix_users: list[str]  # to remove at stop: those the hub will create
    cgroup_parent: str = ""  # analysis-hub's per-hub cgroup folder, removed at stop once empty
    process: subprocess.Popen | None = None

    @property
    def hub_pid(self) -> int:
        return self.process.pid

    def user(self, name: str) -> HubUser:
        return HubUser(self.url, name, self.passwords[name])

    def log(self) -> str:
        path = self.workdir / "hub.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def launch(self, command: list[str], ready_timeout: float) -> HubUnderTest:
        env = {**os.environ, "PYTHONPATH": str(BENCH_DIR)}
        try:
            with open(self.workdir / "hub.log", "a") as log:  # the child keeps its own descriptor
                self.process = subprocess.Popen(
                    command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.workdir,
                    start_new_session=True,
                    env=env,
                )
            deadline = time.monotonic() + ready_timeout
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"{self.kind} hub exited {self.process.returncode}:\n{self.log()[-3000:]}"
                    )
                with contextlib.suppress(requests.ConnectionError):
                    if requests.get(f"{self.url}/hub/api/", timeout=5).status_code == 200:
                        return self
                time.sleep(0.3)
            raise RuntimeError(f"{self.kind} hub did not answer in {ready_timeout} s:\n{self.log()[-3000:]}")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        # Servers outlive their hub by design (analysis-hub keeps them across restarts): end them here.
        for pid in harness.server_pids(self.internal_port):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
        for name in self.unix_users:
            subprocess.run(["userdel", name], capture_output=True, check=False)
        if self.cgroup_parent:
            for folder in Path("/sys/fs/cgroup").glob(f"*/{self.cgroup_parent}"):
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only succeeds once its servers' cgroups are gone
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_analysis_hub(
    users: dict[str, str],
    culler: dict | None = None,
    envs_dir: Path | None = None,
    extra_config: str = "",
    prepare: Prepare | None = None,
    ready_timeout: float = 180,
) -> HubUnderTest:
    """analysis-hub for `users` (name -> password; "admin" is the admin)."""
    workdir = harness.make_workdir()
    settings = harness.hub_settings(
        workdir,
        hub={"log_level": "INFO"},
        auth={"admins": ["admin"], "users": sorted(set(users) - {"admin"}), "groups": {}},
        culler=culler or {"enabled": False},
        local={"envs_dir": str(envs_dir or harness.ENVS_DIR)},
    )
    hub_dir = Path(settings["data_dir"]) / "hub"
    hub_dir.mkdir(parents=True, mode=0o700)
    store = PasswordStore(hub_dir / "passwords.json")
    for name, password in users.items():
        store.set_password(name, password)
    if prepare:
        prepare(hub_dir / "jupyterhub.sqlite")
    if extra_config:
        (workdir / "jupyterhub_config.py").write_text(extra_config)  # JupyterHub reads it from its cwd
    (workdir / "settings.yaml").write_text(yaml.safe_dump(settings))
    hub = HubUnderTest(
        kind=ANALYSIS,
        url=f"http://127.0.0.1:{settings['hub']['port']}",
        workdir=workdir,
        internal_port=settings["hub"]["internal_port"],
        passwords=users,
        unix_users=[name for name in map(system_username, users) if not _unix_user_exists(name)],
        cgroup_parent=load_settings(workdir / "settings.yaml").instance_name,
    )
    command = [sys.executable, "-m", "analysis_hub.cli", "up", "--config", str(workdir / "settings.yaml")]
    return hub.launch(command, ready_timeout)


def start_vanilla_hub(
    users: list[str],
    environments: dict[str, str],
    culler: dict | None = None,
    extra_config: str = "",
    prepare: Prepare | None = None,
    ready_timeout: float = 180,
) -> HubUnderTest:
    """A plain JupyterHub for `users` ("admin" is the admin), servers from `environments`."""
    workdir = harness.make_workdir()
    port, internal_port, proxy_api_port = (harness.free_port() for _ in range(3))
    if prepare:
        prepare(workdir / "jupyterhub.sqlite")
    config = vanilla_config(workdir, port, internal_port, proxy_api_port, users, environments, culler)
    (workdir / "vanilla_jupyterhub_config.py").write_text(config + extra_config)
    hub = HubUnderTest(
        kind=VANILLA,
        url=f"http://127.0.0.1:{port}",
        workdir=workdir,
        internal_port=internal_port,
        passwords={
            name: VANILLA_ADMIN_PASSWORD if name == "admin" else VANILLA_USER_PASSWORD for name in users
        },
        unix_users=[],  # servers run as the hub's own user
    )
    command = [sys.executable, "-m", "jupyterhub", "-f", str(workdir / "vanilla_jupyterhub_config.py")]
    return hub.launch(command, ready_timeout)


def vanilla_config(
    workdir: Path,
    port: int,
    internal_port: int,
    proxy_api_port: int,
    users: list[str],
    environments: dict[str, str],
    culler: dict | None,
) -> str:
    """The vanilla hub's jupyterhub_config.py: JupyterHub's defaults but for what the comparison needs."""
    lines = [
        "# Written by tests/benchmarks/hubs.py: a plain JupyterHub, the benchmarks' baseline.",
        f"c.JupyterHub.bind_url = 'http://127.0.0.1:{port}/'",
        f"c.JupyterHub.hub_bind_url = 'http://127.0.0.1:{internal_port}'",
        f"c.JupyterHub.db_url = 'sqlite:///{workdir / 'jupyterhub.sqlite'}'",
        f"c.JupyterHub.cookie_secret_file = '{workdir / 'jupyterhub_cookie_secret'}'",
        f"c.JupyterHub.pid_file = '{workdir / 'jupyterhub.pid'}'",
        "c.JupyterHub.log_level = 'INFO'",
        f"c.ConfigurableHTTPProxy.command = ['{harness.PROXY}']",
        f"c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{proxy_api_port}'",
        f"c.ConfigurableHTTPProxy.pid_file = '{workdir / 'proxy.pid'}'",
        "c.JupyterHub.authenticator_class = 'shared-password'",
        f"c.SharedPasswordAuthenticator.user_password = '{VANILLA_USER_PASSWORD}'",
        f"c.SharedPasswordAuthenticator.admin_password = '{VANILLA_ADMIN_PASSWORD}'",
        "c.Authenticator.admin_users = {'admin'}",
        f"c.Authenticator.allowed_users = {sorted(set(users))!r}",
        "c.JupyterHub.spawner_class = 'vanilla_spawner.EnvironmentLocalProcessSpawner'",
        f"c.EnvironmentLocalProcessSpawner.environments = {environments!r}",
        f"c.EnvironmentLocalProcessSpawner.default_profile = {next(iter(environments), '')!r}",
        f"c.EnvironmentLocalProcessSpawner.home_dir_template = '{workdir / 'homes'}/{{username}}'",
        f"c.Spawner.start_timeout = {START_TIMEOUT}",
    ]
    if culler and culler.get("enabled"):
        command = [
            sys.executable,
            "-m",
            "jupyterhub_idle_culler",
            f"--timeout={culler['timeout']}",
            f"--cull-every={culler['every']}",
        ]
        lines += [
            f"c.JupyterHub.services = [{{'name': '{CULLER_SERVICE}', 'command': {command!r}}}]",
            f"c.JupyterHub.load_roles = [{{'name': '{CULLER_SERVICE}', 'scopes': {CULLER_SCOPES!r},"
            f" 'services': ['{CULLER_SERVICE}']}}]",
        ]
    return "\n".join(lines) + "\n"


def environments(profiles: list[str], envs_dir: Path = harness.ENVS_DIR) -> dict[str, str]:
    """Profile -> the environment analysis-hub runs it from, which the vanilla hub runs too.

    The warm environments the test suite built (`make test`); a missing one
    is an error rather than a silent build, which would skew the first runs.
    """
    catalog = load_catalog(harness.REPO / "profiles", harness.REPO / "images")
    builder = EnvironmentBuilder(envs_dir, harness.REPO / "images")
    found = {}
    for slug in profiles:
        image = catalog.get(slug).image
        if not (builder.path_for(image) / READY_MARKER).is_file():
            raise RuntimeError(
                f"the {slug} environment is not built in {envs_dir}; run `make test` once first"
            )
        found[slug] = str(builder.path_for(image))
    return found


def proxy_pid(hub: HubUnderTest) -> int | None:
    """The configurable-http-proxy the hub started (a child of the hub process)."""
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(hub.hub_pid).children(recursive=True):
            if any("configurable-http-proxy" in part for part in child.cmdline()):
                return child.pid
    return None


def remove_leftover_unix_users(prefix: str = "jupyter-bench") -> list[str]:
    """Delete Unix users an interrupted benchmark left behind (named `prefix`*, no processes)."""
    busy = {p.info["username"] for p in psutil.process_iter(["username"])}
    removed = []
    for entry in pwd.getpwall():
        if entry.pw_name.startswith(prefix) and entry.pw_name not in busy:
            subprocess.run(["userdel", entry.pw_name], capture_output=True, check=False)
            removed.append(entry.pw_name)
    return removed


def _unix_user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
