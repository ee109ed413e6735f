"""The pipelines service outside a hub, for tests and benchmarks: settings, real replicas, waiting.

`service_settings(...)` resolves the settings a hub would hand its service.
`ServiceReplica` runs one real `python -m analysis_hub.pipelines` process
with them (as JupyterHub starts it: settings JSON and service URL in its
environment) and reads its log; several replicas share one database and one
data folder. `in_process(settings)` builds the same service objects inside
the test, for driving it without HTTP (publish, deploy) and for the in-process
round trip. `wait_for` polls a condition with a bound.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import psutil
from analysis_hub.pipelines.__main__ import SETTINGS_ENV, build
from analysis_hub.pipelines.access import Caller
from analysis_hub.pipelines.service import Pipelines
from analysis_hub.settings import Settings, resolve_paths
from harness import ENVS_DIR, REPO, free_port

T = TypeVar("T")

ALICE = Caller("alice", frozenset({"data-team"}))
BOB = Caller("bob", frozenset({"gpu-team"}))


def service_settings(workdir: Path, database_url: str, replica: str) -> Settings:
    data = {
        "data_dir": str(workdir / "data"),
        "catalog": str(REPO / "profiles"),
        "images_dir": str(REPO / "images"),
        "pipelines": {"database_url": database_url, "replica": replica, "port": free_port()},
        "local": {"envs_dir": str(ENVS_DIR)},
    }
    return resolve_paths(Settings.model_validate(data), workdir)


def in_process(settings: Settings) -> Pipelines:
    """The service's objects as `python -m analysis_hub.pipelines` builds them (scheduler not started)."""
    return build(settings)


def wait_for(condition: Callable[[], T], timeout: float, what: str, every: float = 0.5) -> T:
    """`condition()`'s first truthy value, polled until `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout} s")


class ServiceReplica:
    def __init__(self, workdir: Path, settings: Settings):
        self.settings = settings
        self.name = settings.pipelines.replica
        self.log_path = workdir / f"{self.name}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> ServiceReplica:
        """Start the process; `ready()` waits for it to serve."""
        port = self.settings.pipelines.port
        env = {
            **os.environ,
            SETTINGS_ENV: self.settings.model_dump_json(),
            "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}",
            "JUPYTERHUB_SERVICE_PREFIX": "/services/pipelines/",
        }
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "analysis_hub.pipelines"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=REPO,
                start_new_session=True,  # its own process group: a kill ends its runs too
            )
        return self

    def ready(self, timeout: float = 60) -> ServiceReplica:
        wait_for(lambda: self.alive() and f"(replica {self.name}) at" in self.log(), timeout, self.name)
        return self

    def alive(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"{self.name} exited {self.process.returncode}:\n{self.log()[-3000:]}")
        return True

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """Die as a crashed pod does: no clean-up, its runs' processes (own sessions) with it."""
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in psutil.Process(self.process.pid).children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.kill()
