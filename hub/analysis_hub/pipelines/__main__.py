"""`python -m analysis_hub.pipelines`: the pipelines service (I/O).

Contract: started by the hub (one machine), it reads the hub's resolved
settings from $ANALYSIS_HUB_SETTINGS_JSON (set by `config.apply_pipelines`)
and listens on the loopback URL in $JUPYTERHUB_SERVICE_URL. Run on its own
(the chart's Deployment on Kubernetes), that variable is absent: it reads the
settings file the hub reads ($ANALYSIS_HUB_SETTINGS, with the usual
$ANALYSIS_HUB_* overrides, e.g. the database URL from a Secret) and listens on
every interface of its pod at `pipelines.port`. Either way it takes the rest
of JupyterHub's service variables ($JUPYTERHUB_SERVICE_PREFIX, the API token,
the OAuth client), opens the database, re-registers schedules and serves the
API and pages.

SIGTERM or SIGINT (the hub sends SIGTERM when it stops, as Kubernetes does to
the Deployment's pod) stop it promptly: no new requests or scheduled runs;
runs under way are cancelled, which kills their processes (the next start
marks them interrupted); then it exits. It handles both signals itself, so a
SIGINT ignored by whoever started the hub can't keep it running.

Several such processes may share one PostgreSQL (`pipelines.replica` names
each; on Kubernetes the pod's name): see replicas.py.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import secrets
import signal
import socket
from urllib.parse import urlparse

from tornado.httpserver import HTTPServer

from ..backends import backend_for
from ..catalog_source import CatalogSource
from ..settings import Settings, load_settings
from .engine import replicas, run_metrics
from .service import Pipelines, PipelinesConfig
from .store.models import open_database
from .store.state_folder import SQLITE_FILES, secure_state
from .web.app import make_app

SETTINGS_ENV = "ANALYSIS_HUB_SETTINGS_JSON"


def build(settings: Settings) -> Pipelines:
    config = settings.pipelines
    config.data_dir.mkdir(parents=True, exist_ok=True)
    sessions = open_database(config.database_url or f"sqlite:///{config.data_dir / SQLITE_FILES[0]}")
    secure_state(config.data_dir, logging.getLogger("pipelines.state"))
    backend = backend_for(settings)
    executor = backend.executor(settings)
    hub = settings.hub
    known = backend.known_images(settings)
    return Pipelines(
        sessions=sessions,
        config=PipelinesConfig(
            data_dir=config.data_dir,
            public_url=config.public_url or f"http://{hub.ip}:{hub.port}{hub.base_url}".rstrip("/"),
            max_notebook_bytes=config.max_notebook_mb * 2**20,
            gpus_available=backend.machine_gpus(settings),
            replica=config.replica or socket.gethostname(),
        ),
        catalog=CatalogSource(settings.catalog, settings.images_dir, logging.getLogger("catalog"), known),
        executor=executor,
    )


def service_settings(environ: dict[str, str]) -> Settings:
    if SETTINGS_ENV in environ:
        return Settings.model_validate_json(environ[SETTINGS_ENV])
    return load_settings(environ=environ)


def listen_addresses(settings: Settings, environ: dict[str, str]) -> tuple[list[str], int]:
    if SETTINGS_ENV in environ:
        url = urlparse(environ.get("JUPYTERHUB_SERVICE_URL", f"http://127.0.0.1:{settings.pipelines.port}"))
        # And where the backend's servers reach it to publish from JupyterLab (docker: the gateway).
        return [url.hostname, *backend_for(settings).service_addresses(settings)], url.port
    # Its own pod: reached through its Kubernetes Service, whose target is this port.
    return ["0.0.0.0"], settings.pipelines.port


async def serve() -> None:
    logging.basicConfig(level=logging.INFO, format="[%(levelname).1s %(asctime)s %(name)s] %(message)s")
    settings = service_settings(dict(os.environ))
    pipelines = build(settings)
    run_metrics.register(pipelines.sessions)  # runs by state, last successes: read at each scrape
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/pipelines/")
    app = make_app(pipelines, prefix, settings.pipelines.max_notebook_mb * 2**20)
    app.settings["cookie_secret"] = secrets.token_bytes(32)  # browser sessions re-use the hub's login
    addresses, port = listen_addresses(settings, dict(os.environ))
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    # Room for a notebook at the limit, JSON-escaped; the handler answers 413 above the limit.
    server = HTTPServer(app, max_body_size=4 * settings.pipelines.max_notebook_mb * 2**20)
    for address in addresses:
        server.listen(port, address=address)
    pipelines.start()
    log = logging.getLogger(__name__)
    log.info(
        "pipelines service (replica %s) at %s",
        pipelines.config.replica,
        ", ".join(f"http://{address}:{port}{prefix}" for address in addresses),
    )
    in_step = asyncio.create_task(replicas.keep_in_step(pipelines))  # heartbeats, other replicas' changes
    await stop.wait()
    log.info("stopping: no new requests or scheduled runs; runs under way are cancelled")
    server.stop()
    in_step.cancel()
    pipelines.schedules.stop()
    # Returning ends asyncio.run, which cancels every remaining task: the runs under way.


if __name__ == "__main__":
    asyncio.run(serve())
    # The interpreter's teardown would garbage-collect every object the service holds (its
    # libraries' and models'), one to two seconds of a stop; they go with the process anyway.
    gc.freeze()
