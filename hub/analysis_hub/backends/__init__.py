"""Where users' servers and pipeline runs execute: the backends, behind one small interface.

Contract: `backend_for(settings)` returns the `Backend` that `settings.backend`
names in `BACKENDS`, the one table that settings, configuration, `up` and the
pipelines service dispatch through. A backend is a package under `backends/`
whose `wiring.py` defines `BACKEND`; adding one is that package and one line
in `BACKENDS` (tests/unit/test_fourth_backend.py shows it). Nothing outside a
backend's package asks which backend runs: it asks the backend.

A backend answers (the base class gives the defaults):
- `apply(settings, c, host)`: pure; sets its spawner class and the traits
  only it has on a traitlets `Config` (what every spawner shares is set once,
  by `config.apply_spawner`);
- `check(settings)`: problems with its own settings keys, as "key: reason"
  lines (`Settings` refuses to load with them);
- `prepare(settings)`: I/O before the hub starts (`startup.prepare`); returns
  the settings completed with what it found;
- `preflight(settings, host)`: what `analysis-hub up` must tell the admin
  before starting, as "error: ..." (stops `up`) or "warning: ..." lines;
- `start_timeout(settings)`: seconds a server may take to start;
- `pipelines_url(settings, prefix)`: the pipelines service's URL as a user's
  server reaches it (`prefix` is the service's path on the proxy);
- `service_addresses(settings)`: addresses the hub-managed pipelines service
  listens on besides its own URL's;
- `executor(settings)`: the pipelines service's `Executor` (I/O; called in
  the service's process only);
- `machine_gpus(settings)`: how many GPUs a pipeline version may ask for
  (the machine's, on one machine), or None where the cluster's scheduler
  decides;
- `known_images(settings)`: the image names a profile may use, or None for
  the images under `images_dir` (`images.discover_images`).

Wiring modules import their heavy libraries (DockerSpawner, KubeSpawner,
the Kubernetes client) inside the functions, so `analysis-hub --help`
stays fast and a backend's libraries load only where it runs.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass

BACKENDS = {
    "local": "analysis_hub.backends.local.wiring",
    "docker": "analysis_hub.backends.docker.wiring",
    "kubernetes": "analysis_hub.backends.kubernetes.wiring",
}


@dataclass(frozen=True)
class HostFacts:
    """What the machine allows; passed in so that `apply` stays pure."""

    is_root: bool
    cgroups_writable: bool

    @classmethod
    def detect(cls) -> HostFacts:
        from ..runtime import cgroups

        return cls(is_root=os.geteuid() == 0, cgroups_writable=cgroups.available())


class Backend:
    """The interface, with the defaults of a backend that needs nothing more (see the docstring).

    `settings` are `settings.Settings`, unannotated: that module reads this table (no import loop).
    """

    name: str

    def apply(self, settings, c, host: HostFacts) -> None:
        raise NotImplementedError

    def executor(self, settings):
        raise NotImplementedError

    def start_timeout(self, settings) -> int:
        raise NotImplementedError

    def check(self, settings) -> list[str]:
        return []

    def prepare(self, settings):
        return settings

    def preflight(self, settings, host: HostFacts) -> list[str]:
        return []

    def pipelines_url(self, settings, prefix: str) -> str:
        # Through the proxy, like a browser: right wherever servers share the hub's network.
        hub = settings.hub
        host = "127.0.0.1" if hub.ip in ("", "0.0.0.0") else hub.ip
        return f"http://{host}:{hub.port}{prefix}"

    def service_addresses(self, settings) -> list[str]:
        return []

    def machine_gpus(self, settings) -> int | None:
        return None

    def known_images(self, settings) -> tuple[str, ...] | None:
        return None


class OneMachine(Backend):
    """What the one-machine backends (local, docker) answer alike: the images built from
    images/ (environments or tags), and the GPUs of this machine's pool."""

    def machine_gpus(self, settings) -> int:
        from ..runtime.gpus import machine_gpu_pool

        return machine_gpu_pool(settings.gpu_state_file).total


def backend_for(settings) -> Backend:
    return importlib.import_module(BACKENDS[settings.backend]).BACKEND
