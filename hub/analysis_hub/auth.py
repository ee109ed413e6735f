"""The built-in login of the embedded default: declared users, own passwords.

Contract:
- Passwords never live in the settings file. `PasswordStore` keeps one
  scrypt hash per user in `<data_dir>/hub/passwords.json` (mode 0600).
- `BuiltinAuthenticator` lets a user in only if they are declared in the
  settings (`allowed_users`/`admin_users`) *and* their password matches
  their own hash; unlike JupyterHub's shared-password login, knowing one
  password never opens another account.
- `ensure_initial_passwords` gives every declared user without a password a
  random one (or the initial one given: on Kubernetes, the admins' from the
  chart's generated Secret), once, and returns them so `analysis-hub up`
  can show them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

from jupyterhub.auth import Authenticator
from traitlets import Unicode

_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hash_password(password, base64.b64decode(salt)).split("$")[2]
    return hmac.compare_digest(candidate, digest)


class PasswordStore:
    """A JSON file of user name -> scrypt hash, readable by the hub's user only."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def hashes(self) -> dict[str, str]:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}

    def set_password(self, user: str, password: str) -> None:
        hashes = self.hashes()
        hashes[user] = hash_password(password)
        self._write(hashes)

    def verify(self, user: str, password: str) -> bool:
        stored = self.hashes().get(user)
        return stored is not None and verify_password(password, stored)

    def _write(self, hashes: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # O_CREAT's mode doesn't apply to a leftover temp file
        with os.fdopen(fd, "w") as f:
            json.dump(hashes, f, indent=1, sort_keys=True)
        os.replace(tmp, self.path)


def ensure_initial_passwords(
    store: PasswordStore, users: list[str], initial: str | None = None
) -> dict[str, str]:
    """Give each user without a password one (`initial` where given: the chart's generated
    Secret; else a random one); return the new ones. A password already set is never replaced."""
    existing = store.hashes()
    created = {}
    for user in users:
        if user not in existing:
            created[user] = initial or secrets.token_urlsafe(12)
            store.set_password(user, created[user])
    return created


class BuiltinAuthenticator(Authenticator):
    """Username and password checked against the hub's private password file."""

    password_file = Unicode(config=True, help="JSON file of scrypt password hashes")

    async def authenticate(self, handler, data):
        username = self.normalize_username(data.get("username", ""))
        password = data.get("password", "")
        if not username or not password:
            return None
        if PasswordStore(self.password_file).verify(username, password):
            return username
        self.log.warning("Failed login for %r", username)
        return None
