"""A Unix user per hub user, with a private home.

Contract:
- `system_username(hub_name)` is pure and always a valid Unix name:
  `jupyter-<name>` when the hub name is already safe, otherwise
  `jupyter-<slug>-<hash>` so that different hub names (unicode ones
  included) never collide. At most 32 characters.
- `team_run_username(team)` is pure: the Unix user a team's pipeline runs
  execute as, `pipelines-<team>` (hashed when long). Its prefix is not
  `jupyter-`, so no hub user's name can ever map to a team's run user.
- `ensure_system_user(name, home)` creates the user with `useradd` if
  missing and makes `home` theirs with mode 0700. Needs root.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import subprocess
from pathlib import Path

PREFIX = "jupyter-"
TEAM_PREFIX = "pipelines-"
_MAX = 32
_SAFE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
# What a hashed name ends with; a safe name that looks like one is hashed too,
# so "alice-3bc51062" can never take the Unix user of "Alice".
_HASH_SUFFIX = re.compile(r"(^|-)[0-9a-f]{8}$")


def system_username(hub_name: str) -> str:
    if _SAFE.match(hub_name) and not _HASH_SUFFIX.search(hub_name) and len(PREFIX) + len(hub_name) <= _MAX:
        return PREFIX + hub_name
    digest = hashlib.sha256(hub_name.encode()).hexdigest()[:8]
    slug = re.sub(r"[^a-z0-9]+", "-", hub_name.lower()).strip("-")
    slug = slug[: _MAX - len(PREFIX) - len(digest) - 1].strip("-")
    return f"{PREFIX}{slug}-{digest}" if slug else f"{PREFIX}{digest}"


def team_run_username(team: str) -> str:
    if len(TEAM_PREFIX) + len(team) <= _MAX:
        return TEAM_PREFIX + team
    digest = hashlib.sha256(team.encode()).hexdigest()[:8]
    return f"{TEAM_PREFIX}{team[: _MAX - len(TEAM_PREFIX) - len(digest) - 1].strip('-')}-{digest}"


def ensure_system_user(name: str, home: Path) -> pwd.struct_passwd:
    try:
        user = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--no-create-home",
                "--home-dir",
                str(home),
                "--shell",
                "/bin/bash",
                "--user-group",
                "--comment",
                "analysis-hub user",
                name,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        user = pwd.getpwnam(name)
    home.mkdir(parents=True, exist_ok=True)
    os.chown(home, user.pw_uid, user.pw_gid)
    os.chmod(home, 0o700)
    return user
