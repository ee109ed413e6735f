"""`analysis-hub up` stops cleanly, and starts cleanly after a stop that was not clean.

Real hubs (`analysis-hub up`: JupyterHub, configurable-http-proxy, the idle
culler and the pipelines service) with real users' servers on loopback. The
processes are read from /proc with psutil, independently of the hub's own
bookkeeping. Bounded waits here are limits on how long a test waits, not
measurements: the figures are in `make bench` and the closing notes.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest
import yaml
from analysis_hub.config import CULLER_SERVICE, PIPELINES_SERVICE
from conftest import start_hub
from harness import hub_settings, make_workdir
from notebooks import make_notebook

pytestmark = pytest.mark.integration

STOP_LIMIT_S = 5  # issue 16: SIGTERM stops the hub, its services and the proxy within 5 s
# What the hub starts besides users' servers: the proxy, and its services by name.
HUB_PARTS = ("proxy", CULLER_SERVICE, PIPELINES_SERVICE)


def running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def is_server(process: psutil.Process) -> bool:
    """A user's server or what it runs (kernels): JupyterHub gives them JUPYTERHUB_USER, and its
    services JUPYTERHUB_SERVICE_NAME besides."""
    try:
        environ = process.environ()
        return "JUPYTERHUB_USER" in environ and "JUPYTERHUB_SERVICE_NAME" not in environ
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def hub_processes(hub_pid: int) -> tuple[list[psutil.Process], list[psutil.Process]]:
    """(what the hub started besides users' servers, the servers and their kernels): the hub's
    descendants split by whether they belong to a server."""
    servers, others = [], []
    for process in psutil.Process(hub_pid).children(recursive=True):
        ancestry = [process, *process.parents()]
        (servers if any(is_server(p) for p in ancestry) else others).append(process)
    return others, servers


def part(process: psutil.Process) -> str | None:
    try:
        command = " ".join(process.cmdline())
        if "configurable-http-proxy" in command:
            return "proxy"
        if "ipykernel" in command:  # outside a user's server: a pipeline run's kernel
            return "kernel"
        return process.environ().get("JUPYTERHUB_SERVICE_NAME")
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def parts(started: list[psutil.Process]) -> dict[str, list[psutil.Process]]:
    """The proxy and the services (their leaders: what a service starts shares its environment)."""
    leaders = [p for p in started if part(p) and part(p) != part(p.parent())]
    return {name: [p for p in leaders if part(p) == name] for name in HUB_PARTS}


def describe(processes: list[psutil.Process]) -> str:
    return "; ".join(f"{p.pid}: {' '.join(p.cmdline())[:150]}" for p in processes if running(p))


def pipelines(user, method: str, path: str, **kwargs):
    return user.api.request(method, f"{user.base_url}/services/pipelines/api/{path}", timeout=60, **kwargs)


def pipelines_answer(user) -> bool:
    r = pipelines(user, "GET", "pipelines")
    return r.status_code == 200 and isinstance(r.json(), list)


def start_a_long_run(user) -> int:
    """A run of a notebook that sleeps for 10 minutes, once its kernel runs (papermill's child)."""
    sleeper = make_notebook("import time; time.sleep(600)")
    created = pipelines(
        user, "POST", "pipelines/data-team/sleeper/versions", json={"notebook": sleeper, "profile": "pyspark"}
    )
    assert created.status_code == 201, created.text
    assert pipelines(user, "PUT", "pipelines/data-team/sleeper/deployment", json={}).status_code == 200
    run = pipelines(user, "POST", "pipelines/data-team/sleeper/runs", json={}).json()
    return run["id"]


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.5)


def test_sigterm_stops_hub_services_and_proxy_and_the_next_start_finds_the_servers():
    """SIGTERM to `up` with two running servers, both services up and a pipeline run under way (the
    hub started as a shell's background job, SIGINT ignored: the case that took 47-67 s) ends the
    hub within 5 s and every process it started (the run's papermill and kernel included) except
    the users' servers, which keep running; `up` says so; a new `up` on the same data folder finds
    the servers and reaches them, and records the run as interrupted."""
    hub = start_hub(background_job=True)
    try:
        users = [hub.user("alice"), hub.user("bob")]
        for user in users:
            assert user.start().status_code in (201, 202)
        for user in users:
            user.wait_ready()
        run_id = start_a_long_run(users[0])
        wait_for(lambda: any(part(p) == "kernel" for p in hub_processes(hub.process.pid)[0]), 300, "a kernel")
        started, servers = hub_processes(hub.process.pid)
        found = parts(started)
        assert all(len(found[part]) == 1 for part in HUB_PARTS), describe(started)
        assert len([p for p in servers if is_server(p) and not is_server(p.parent())]) == 2, describe(servers)

        hub.process.send_signal(signal.SIGTERM)
        try:
            hub.process.wait(STOP_LIMIT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the hub still runs {STOP_LIMIT_S} s after SIGTERM:\n{hub.log()[-3000:]}")
        left = [p for p in started if running(p)]
        assert not left, f"left running after the hub stopped: {describe(left)}"
        assert all(running(p) for p in servers), "users' servers keep running"
        shutdown = hub.log().partition("Received signal SIGTERM")[2]
        assert "2 user server(s) keep running on purpose" in shutdown
        assert "Traceback" not in shutdown

        hub.start()
        for user in users:
            assert user.model()["servers"][""]["ready"]
            assert user.server_api("/status").status_code == 200
        run = pipelines(users[0], "GET", f"runs/{run_id}").json()
        assert run["status"] == "failed" and run["reason"].startswith("interrupted"), run
    finally:
        hub.stop()


def test_after_a_sigkill_the_next_start_stops_what_the_hub_left_running():
    """A hub killed with SIGKILL leaves its proxy and services running; the next `up` on the same
    data folder names and stops each (by pid) and starts its own: one proxy, one culler and one
    pipelines service, which answers."""
    hub = start_hub()
    try:
        started, _ = hub_processes(hub.process.pid)
        stale = {part: found[0] for part, found in parts(started).items() if len(found) == 1}
        assert set(stale) == set(HUB_PARTS), describe(started)

        hub.process.kill()
        hub.process.wait()
        assert all(running(p) for p in stale.values()), "an unclean stop leaves them running"

        hub.start()
        log = hub.log()
        assert f"stopped the proxy (pid {stale['proxy'].pid}) left running by a hub that did not stop" in log
        for service in (CULLER_SERVICE, PIPELINES_SERVICE):
            assert f"stopped the {service} service (pid {stale[service].pid})" in log
        assert not [p for p in stale.values() if running(p)], describe(list(stale.values()))
        now, _ = hub_processes(hub.process.pid)
        assert {part: len(found) for part, found in parts(now).items()} == dict.fromkeys(HUB_PARTS, 1)
        assert pipelines_answer(hub.user("alice"))
    finally:
        hub.stop()


def test_up_refuses_a_port_another_process_holds():
    """A port `up` needs, held by a process that isn't this hub's: `up` exits 2 naming the port,
    the setting and the pid, and starts nothing."""
    workdir = make_workdir()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        settings = hub_settings(workdir, pipelines={"port": port})
        (workdir / "settings.yaml").write_text(yaml.safe_dump(settings))
        result = subprocess.run(
            [sys.executable, "-m", "analysis_hub.cli", "up", "--config", str(workdir / "settings.yaml")],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"port {port} (pipelines.port) is in use by pid {os.getpid()}" in result.stderr
    assert not (workdir / "data" / "hub" / "jupyterhub.pid").exists(), "nothing started"
