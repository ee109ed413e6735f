"""system_username: a valid, collision-free Unix name for every hub name."""

from __future__ import annotations

import re

import pytest
from analysis_hub.runtime.unix_users import system_username

VALID = re.compile(r"^jupyter-[a-z0-9][a-z0-9_-]*$")


@pytest.mark.parametrize("name", ["alice", "bob-2", "data_team", "0day", "a" * 24])
def test_safe_names_keep_their_name(name):
    """A hub name that is already a safe Unix name becomes jupyter-<name>."""
    assert system_username(name) == f"jupyter-{name}"


UNSAFE = [
    "Alice",
    "ALICE",
    "josé",
    "jose\u0301",  # the same look, decomposed
    "日本語",
    "Ωmega",
    "user.name",
    "user@example.com",
    "-leading-dash",
    "_underscore",
    "a" * 25,
    "b" * 200,
    "",
    " ",
    "../../etc",
]


@pytest.mark.parametrize("name", UNSAFE)
def test_unsafe_names_become_valid_names(name):
    """Unicode, upper-case, long or odd hub names map to a valid Unix name of at most 32 characters."""
    username = system_username(name)
    assert len(username) <= 32
    assert VALID.match(username), username
    assert username != f"jupyter-{name}"


def test_mapping_is_stable():
    """The same hub name always maps to the same Unix name."""
    assert system_username("Ωmega") == system_username("Ωmega")


def test_different_names_never_collide():
    """Distinct hub names, safe and unsafe alike, get distinct Unix names."""
    names = ["alice", "bob-2", "a" * 24, *UNSAFE, "alice.", "alice_", "Alice.", "a" * 26]
    usernames = [system_username(n) for n in names]
    assert len(set(usernames)) == len(names)


@pytest.mark.parametrize("unsafe", ["Alice", "user.name", "日本語", "b" * 200])
def test_safe_name_cannot_take_over_a_hashed_name(unsafe):
    """A safe hub name spelled like another user's hashed Unix name does not get that Unix user."""
    taken = system_username(unsafe)
    lookalike = taken.removeprefix("jupyter-")  # e.g. "alice-3bc51062", itself a safe hub name
    assert system_username(lookalike) != taken


def test_team_run_users_never_collide_with_hub_users():
    """A team's run user is `pipelines-<team>`; hub users are always `jupyter-...`, so no hub name
    (not even 'pipelines-data-team') maps to a team's run user. Long team names are hashed to 32."""
    from analysis_hub.runtime.unix_users import team_run_username

    assert team_run_username("data-team") == "pipelines-data-team"
    assert system_username("pipelines-data-team") != team_run_username("data-team")
    long_a, long_b = "a" * 40 + "-x", "a" * 40 + "-y"
    assert len(team_run_username(long_a)) <= 32
    assert team_run_username(long_a) != team_run_username(long_b)
