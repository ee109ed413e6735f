"""Secrets the hub needs at start, read from files or the environment, never from settings.

Contract: `load_credentials(settings, environ)` returns `Credentials` for
`apply_settings`, or raises `SettingsError` saying which file or variable to
provide. With the built-in login nothing is needed. With an OAuth login:
- the client secret comes from `auth.<type>.client_secret_file` (a mounted
  Kubernetes Secret, say) or else `$OAUTH_CLIENT_SECRET`;
- the key that encrypts users' tokens in the database (JupyterHub's auth
  state) comes from `$JUPYTERHUB_CRYPT_KEY`, or else from
  `<data_dir>/hub/auth_state_key`, created once (mode 0600) so that tokens
  and sessions survive a hub restart.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass

from .settings import Settings, SettingsError

CLIENT_SECRET_ENV = "OAUTH_CLIENT_SECRET"
CRYPT_KEY_ENV = "JUPYTERHUB_CRYPT_KEY"


@dataclass(frozen=True)
class Credentials:
    client_secret: str | None = None
    auth_state_key: str | None = None  # 32 bytes, hex


def load_credentials(settings: Settings, environ: dict[str, str] | None = None) -> Credentials:
    environ = os.environ if environ is None else environ
    auth = settings.auth
    if auth.type == "builtin":
        return Credentials()
    oauth = getattr(auth, auth.type)
    key = f"auth.{auth.type}.client_secret_file"
    if oauth.client_secret_file:
        try:
            secret = oauth.client_secret_file.read_text().strip()
        except OSError as e:
            raise SettingsError(
                key, [f"{key}: cannot read {oauth.client_secret_file}: {e.strerror}"]
            ) from None
        if not secret:
            raise SettingsError(key, [f"{key}: {oauth.client_secret_file} is empty"])
    elif environ.get(CLIENT_SECRET_ENV):
        secret = environ[CLIENT_SECRET_ENV]
    else:
        raise SettingsError(
            key, [f"{key}: no client secret; point {key} at a file holding it, or set ${CLIENT_SECRET_ENV}"]
        )
    return Credentials(
        client_secret=secret, auth_state_key=environ.get(CRYPT_KEY_ENV) or _stored_key(settings)
    )


def _stored_key(settings: Settings) -> str:
    path = settings.hub_state_dir / "auth_state_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key
