"""What must happen before JupyterHub starts: folders, provider endpoints, secrets (I/O).

Contract: `prepare(settings, environ)` creates the data folders, discovers an
OpenID Connect provider's endpoints, lets the backend prepare (docker: the
container network and its subnet) and loads the credentials, returning the
completed settings and `Credentials` for the pure `apply_settings`.
`configure(c)` is the whole of `hub/jupyterhub_config.py`: settings from
`$ANALYSIS_HUB_SETTINGS` to traits on JupyterHub's config object `c`.
Errors are `SettingsError`s naming the key and what to provide.
"""

from __future__ import annotations

import os

from traitlets.config import Config

from .backends import backend_for
from .config import apply_settings
from .credentials import Credentials, load_credentials
from .oauth import discover_oidc_endpoints
from .settings import Settings, load_settings


def prepare_data_dir(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.hub_state_dir.mkdir(exist_ok=True)
    os.chmod(settings.hub_state_dir, 0o700)  # database, cookie secret, password hashes, keys
    settings.local.envs_dir.mkdir(parents=True, exist_ok=True)


def prepare(settings: Settings, environ: dict[str, str] | None = None) -> tuple[Settings, Credentials]:
    prepare_data_dir(settings)
    settings = discover_oidc_endpoints(settings)
    # The docker backend's container network and host rules, for instance.
    settings = backend_for(settings).prepare(settings)
    return settings, load_credentials(settings, environ)


def configure(c: Config) -> Config:
    settings, credentials = prepare(load_settings())
    return apply_settings(settings, c, credentials=credentials)
