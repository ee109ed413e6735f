"""The built-in login: scrypt hashes in a private file, one password per user."""

from __future__ import annotations

import json
import stat

import pytest
from analysis_hub.auth import (
    BuiltinAuthenticator,
    PasswordStore,
    ensure_initial_passwords,
    hash_password,
    verify_password,
)


def test_hash_verify_round_trip():
    """A password verifies against its own hash."""
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$")
    assert verify_password("correct horse", stored)


def test_wrong_password_fails():
    """A different password, or the right one with different case, does not verify."""
    stored = hash_password("correct horse")
    assert not verify_password("wrong horse", stored)
    assert not verify_password("Correct horse", stored)
    assert not verify_password("", stored)


def test_hashes_are_salted():
    """Two hashes of one password differ (random salt) and both verify."""
    a, b = hash_password("same"), hash_password("same")
    assert a != b
    assert verify_password("same", a) and verify_password("same", b)
    assert "same" not in a


@pytest.mark.parametrize("stored", ["", "plain-text", "md5$abc$def", "scrypt$only-two", "a$b$c$d"])
def test_malformed_hash_never_verifies(stored):
    """A stored value that is not a scrypt hash verifies nothing."""
    assert not verify_password("plain-text", stored)


def test_store_file_is_private(tmp_path):
    """The password file is created with mode 0600, inside a 0700 folder, holding only hashes."""
    path = tmp_path / "hub" / "passwords.json"
    store = PasswordStore(path)
    store.set_password("alice", "alice-pw-123")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0
    assert "alice-pw-123" not in path.read_text()
    assert set(json.loads(path.read_text())) == {"alice"}


def test_store_verifies_each_user_against_their_own_hash(tmp_path):
    """Knowing one user's password never opens another account."""
    store = PasswordStore(tmp_path / "passwords.json")
    store.set_password("alice", "alice-pw")
    store.set_password("bob", "bob-pw")
    assert store.verify("alice", "alice-pw") and store.verify("bob", "bob-pw")
    assert not store.verify("alice", "bob-pw")
    assert not store.verify("carol", "alice-pw")


def test_set_password_replaces_the_old_one(tmp_path):
    """After set_password the old password no longer works; the file stays 0600."""
    path = tmp_path / "passwords.json"
    store = PasswordStore(path)
    store.set_password("alice", "old-password")
    store.set_password("alice", "new-password")
    assert store.verify("alice", "new-password") and not store.verify("alice", "old-password")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_missing_store_has_no_users(tmp_path):
    """A store whose file does not exist yet has no hashes and verifies no one."""
    store = PasswordStore(tmp_path / "nope.json")
    assert store.hashes() == {}
    assert not store.verify("admin", "anything")


def test_ensure_initial_passwords_creates_once(tmp_path):
    """Users without a password get a random one, once; a second call creates nothing and changes nothing."""
    store = PasswordStore(tmp_path / "passwords.json")
    store.set_password("bob", "bob-own-password")
    created = ensure_initial_passwords(store, ["admin", "alice", "bob"])
    assert set(created) == {"admin", "alice"}
    assert created["admin"] != created["alice"]
    assert all(len(pw) >= 12 for pw in created.values())
    assert store.verify("admin", created["admin"]) and store.verify("alice", created["alice"])
    assert store.verify("bob", "bob-own-password")
    before = store.hashes()
    assert ensure_initial_passwords(store, ["admin", "alice", "bob"]) == {}
    assert store.hashes() == before


@pytest.fixture
def authenticator(tmp_path):
    store = PasswordStore(tmp_path / "passwords.json")
    store.set_password("alice", "alice-pw-123")
    store.set_password("bob", "bob-pw-1234")
    return BuiltinAuthenticator(password_file=str(store.path))


async def test_authenticate_accepts_right_password(authenticator):
    """The right password logs the user in under their name."""
    assert (
        await authenticator.authenticate(None, {"username": "alice", "password": "alice-pw-123"}) == "alice"
    )


@pytest.mark.parametrize(
    "data",
    [
        {"username": "alice", "password": "wrong"},
        {"username": "alice", "password": "bob-pw-1234"},
        {"username": "alice", "password": ""},
        {"username": "alice"},
        {"username": "", "password": "alice-pw-123"},
        {"password": "alice-pw-123"},
        {"username": "mallory", "password": "alice-pw-123"},
    ],
)
async def test_authenticate_rejects(authenticator, data):
    """Wrong, empty or another user's password, an empty or unknown user name: no login."""
    assert await authenticator.authenticate(None, data) is None
