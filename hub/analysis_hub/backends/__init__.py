"""Where users' servers and pipeline runs execute: the backends, behind one small protocol.

Contract: `backend_for(settings)` returns the `Backend` that `settings.backend`
names in `BACKENDS`, the one table that configuration (`config.py`), the
command line (`cli.py`) and the pipelines service (`pipelines/__main__.py`)
dispatch through. A backend is a package under `backends/` whose `wiring.py`
defines `BACKEND`; adding one is that package and one line in `BACKENDS`
(and its name in `settings.Settings.backend`).

A backend owns:
- `apply(settings, c, host)`: pure; sets its spawner class and the traits
  only it has on a traitlets `Config` (what every spawner shares is set once,
  by `config.apply_spawner`);
- `preflight(settings, host)`: what `analysis-hub up` must tell the admin
  before starting, as "error: ..." (stops `up`) or "warning: ..." lines;
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
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from traitlets.config import Config

    from ..config import HostFacts
    from ..pipelines.engine.executor import Executor
    from ..settings import Settings

BACKENDS = {
    "local": "analysis_hub.backends.local.wiring",
    "docker": "analysis_hub.backends.docker.wiring",
    "kubernetes": "analysis_hub.backends.kubernetes.wiring",
}


class Backend(Protocol):
    name: str

    def apply(self, settings: Settings, c: Config, host: HostFacts) -> None: ...

    def preflight(self, settings: Settings, host: HostFacts) -> list[str]: ...

    def executor(self, settings: Settings) -> Executor: ...

    def machine_gpus(self, settings: Settings) -> int | None: ...

    def known_images(self, settings: Settings) -> tuple[str, ...] | None: ...


class OneMachine:
    """What the one-machine backends (local, docker) answer alike: the images built from
    images/ (environments or tags), and the GPUs of this machine's pool."""

    def known_images(self, settings: Settings) -> None:
        return None

    def machine_gpus(self, settings: Settings) -> int:
        from ..runtime.gpus import machine_gpu_pool

        return machine_gpu_pool(settings.gpu_state_file).total


def backend_for(settings: Settings) -> Backend:
    return importlib.import_module(BACKENDS[settings.backend]).BACKEND
