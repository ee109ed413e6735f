"""`python -m analysis_hub.pipelines`: the pipelines service, started by the hub (I/O).

Contract: reads the hub's resolved settings from $ANALYSIS_HUB_SETTINGS_JSON
(set by `config.apply_pipelines`) and JupyterHub's service variables
($JUPYTERHUB_SERVICE_URL, $JUPYTERHUB_SERVICE_PREFIX, the OAuth client), opens
the database, re-registers schedules and serves the API and pages on loopback.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from urllib.parse import urlparse

from ..backends import backend_for
from ..catalog_source import CatalogSource
from ..settings import Settings
from .models import open_database
from .service import Pipelines
from .state import SQLITE_FILES, secure_state
from .web import make_app

SETTINGS_ENV = "ANALYSIS_HUB_SETTINGS_JSON"


def build(settings: Settings) -> Pipelines:
    config = settings.pipelines
    config.data_dir.mkdir(parents=True, exist_ok=True)
    sessions = open_database(config.database_url or f"sqlite:///{config.data_dir / SQLITE_FILES[0]}")
    secure_state(config.data_dir, logging.getLogger("pipelines.state"))
    backend = backend_for(settings)
    executor = backend.executor(settings)
    hub = settings.hub
    public_url = config.public_url or f"http://{hub.ip}:{hub.port}{hub.base_url}".rstrip("/")
    known = backend.known_images(settings)
    catalog = CatalogSource(settings.catalog, settings.images_dir, logging.getLogger("catalog"), known)
    cluster = backend.cluster(settings)
    gpus = backend.machine_gpus(settings) or 0
    max_bytes = config.max_notebook_mb * 2**20
    return Pipelines(
        sessions, config.data_dir, catalog, executor, public_url, max_bytes, gpus, cluster, config.output_url
    )


async def serve() -> None:
    logging.basicConfig(level=logging.INFO, format="[%(levelname).1s %(asctime)s %(name)s] %(message)s")
    settings = Settings.model_validate_json(os.environ[SETTINGS_ENV])
    pipelines = build(settings)
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/pipelines/")
    app = make_app(pipelines, prefix, settings.pipelines.max_notebook_mb * 2**20)
    app.settings["cookie_secret"] = secrets.token_bytes(32)  # browser sessions re-use the hub's login
    url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", f"http://127.0.0.1:{settings.pipelines.port}"))
    # Room for a notebook at the limit, JSON-escaped; the handler answers 413 above the limit.
    app.listen(url.port, address=url.hostname, max_body_size=4 * settings.pipelines.max_notebook_mb * 2**20)
    pipelines.start()
    logging.getLogger(__name__).info("pipelines service at %s%s", url.geturl(), prefix)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve())
