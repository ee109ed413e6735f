"""Team folders: which hub groups have one, who gets which, and what each backend names them (pure).

Contract:
- Admins declare team folders in the settings' `teams` section (a hub group
  name -> `TeamSettings`); every member of such a group gets the team's
  folder at `~/teams/<team>` in every server, read-write, or read-only where
  the team is flagged so. Non-members get nothing: no folder, no mount.
- `member_teams(teams, groups)` is the one place membership is decided for
  servers: the user's hub groups at this spawn (builtin groups, or the
  provider's with OIDC/GitHub login, refreshed at each login), so removing a
  member from the group removes the folder at their next spawn.
- `checked_team_names` and `team_claim_problems` are the settings' checks of
  the `teams` section (each raises `ValueError` naming the key).
- The names derived from a team, one rule each: `unix_group_name` (local
  backend; also the volume's name in a pod spec), `docker_volume_name`
  (docker backend); the Kubernetes claim names are the chart's (settings
  `kubernetes.team_claims`).
Nothing here touches files, users or engines: the local sandbox
(`runtime.team_folders`), the docker spawner and the Kubernetes spawner do.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

# A team name is a path component in every home, part of a Unix group, a volume
# and a Kubernetes name: a DNS label (a pipelines team name that also ends in a letter or digit).
TEAM_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
TEAM_NAME_RULE = "lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63"
TEAMS_DIR = "teams"  # under each home: ~/teams/<team>
UNIX_GROUP_PREFIX = "team-"
_UNIX_MAX = 32


@dataclass(frozen=True, order=True)
class TeamFolder:
    """One team folder a server or run gets."""

    team: str
    read_only: bool = False

    @property
    def home_path(self) -> str:
        """Where it appears, relative to the home: `teams/<team>`."""
        return f"{TEAMS_DIR}/{self.team}"


def member_teams(teams: dict, groups: set[str] | list[str]) -> tuple[TeamFolder, ...]:
    """The team folders for a user in `groups`; `teams` maps a team to its settings (or a dict)."""
    folders = []
    for team, config in teams.items():
        if team in groups:
            read_only = config.get("read_only", False) if isinstance(config, dict) else config.read_only
            folders.append(TeamFolder(team, bool(read_only)))
    return tuple(sorted(folders))


def checked_team_names(value):
    """The settings' `teams` before validation: names checked; `team:` with nothing under it
    is a team with the defaults."""
    if not isinstance(value, dict):
        return value
    bad = [str(name) for name in value if not isinstance(name, str) or not TEAM_NAME.match(name)]
    if bad:
        raise ValueError(f"team name {', '.join(map(repr, bad))} is not valid ({TEAM_NAME_RULE})")
    return {name: {} if config is None else config for name, config in value.items()}


def team_claim_problems(teams: dict, claims: dict[str, str]) -> list[str]:
    """On Kubernetes every team needs its claim (the chart writes them)."""
    missing = sorted(set(teams) - set(claims))
    if not missing:
        return []
    return [
        f"kubernetes.team_claims: no claim for team {', '.join(missing)}; the chart's"
        " teams.folders values create and name them"
    ]


def unix_group_name(team: str) -> str:
    """`team-<team>`, or `team-<start>-<hash>` where that would pass Unix's 32 characters.

    The prefix differs from the users' (`jupyter-`, `pipelines-`), so no user's private
    group can ever be a team's group. Always a DNS label too: the team volume's name in a pod.
    """
    if len(UNIX_GROUP_PREFIX) + len(team) <= _UNIX_MAX:
        return UNIX_GROUP_PREFIX + team
    digest = hashlib.sha256(team.encode()).hexdigest()[:8]
    start = team[: _UNIX_MAX - len(UNIX_GROUP_PREFIX) - len(digest) - 1].strip("-")
    return f"{UNIX_GROUP_PREFIX}{start}-{digest}"


def docker_volume_name(name_prefix: str, team: str) -> str:
    """The team's named volume on the docker backend, with this hub's prefix (never another hub's)."""
    return f"{name_prefix}-team-{team}"
