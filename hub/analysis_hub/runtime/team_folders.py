"""Team folders on one machine: a root-owned folder and a Unix group per team (I/O, needs root).

Contract (the plan is `analysis_hub.teams`; this module is its only writer):
- `ensure_team_folders(root, folders, user)` makes `<root>/<team>` for each
  folder on first use, owned by root and the team's Unix group
  (`teams.unix_group_name`, created with `groupadd` when missing), setgid
  2770 (2750 for a read-only team: members read, only root writes), under
  `root` itself, root-owned 0711 (traverse, never list: a non-member can't
  see which teams exist). It then makes the Unix `user`'s team groups
  exactly these: added to each, removed from every other `team-*` group, so
  membership follows the hub's groups at each spawn or run. One process at
  a time edits /etc/group (an `flock` shared with the pipelines service).
- A step that fails (groupadd, gpasswd, the folder) raises
  `TeamFolderError` naming the team and what failed.
- Without a Unix user (the hub is not root, users are not isolated) the
  folders are plain 0700 folders of the hub's user.
- `link_team_folders(home, folders, root)` runs as the user (in the
  sandbox's preexec, after dropping privileges): `~/teams/<team>` becomes a
  symbolic link to the team's folder, and links to folders of teams the user
  left are removed. Anything the user put in `~/teams` is left alone.
"""

from __future__ import annotations

import fcntl
import grp
import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

from ..teams import TEAMS_DIR, UNIX_GROUP_PREFIX, TeamFolder, unix_group_name

ROOT_MODE = 0o711  # members traverse to their folder; nobody lists the teams
MEMBERS_MODE = 0o2770  # setgid: files made inside belong to the team's group
READ_ONLY_MODE = 0o2750


class TeamFolderError(RuntimeError):
    pass


def ensure_team_folders(root: Path, folders: Iterable[TeamFolder], user: str | None) -> None:
    folders = tuple(folders)
    try:
        _ensure(root, folders, user)
    except (OSError, subprocess.CalledProcessError) as e:
        detail = getattr(e, "stderr", None) or str(e)
        names = ", ".join(f.team for f in folders) or "none"
        raise TeamFolderError(f"preparing the team folders ({names}) failed: {detail.strip()}") from None


def _ensure(root: Path, folders: tuple[TeamFolder, ...], user: str | None) -> None:
    if user is None:
        for folder in folders:
            (root / folder.team).mkdir(parents=True, exist_ok=True, mode=0o700)
        return
    root.mkdir(parents=True, exist_ok=True)
    os.chown(root, 0, 0)
    os.chmod(root, ROOT_MODE)
    with open(root / ".groups.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        wanted = set()
        for folder in folders:
            group = _ensure_group(unix_group_name(folder.team))
            wanted.add(group.gr_name)
            path = root / folder.team
            path.mkdir(exist_ok=True)
            os.chown(path, 0, group.gr_gid)
            os.chmod(path, READ_ONLY_MODE if folder.read_only else MEMBERS_MODE)
            if user not in group.gr_mem:
                _run("gpasswd", "--add", user, group.gr_name)
        for group in grp.getgrall():
            left = group.gr_name.startswith(UNIX_GROUP_PREFIX) and group.gr_name not in wanted
            if left and user in group.gr_mem:
                _run("gpasswd", "--delete", user, group.gr_name)


def link_team_folders(home: Path, folders: Iterable[TeamFolder], root: Path) -> None:
    """As the user: `~/teams/<team>` -> `<root>/<team>` for each folder, and no stale links."""
    teams_dir = home / TEAMS_DIR
    wanted = {folder.team: str(root / folder.team) for folder in folders}
    if not wanted and not teams_dir.is_dir():
        return
    try:
        teams_dir.mkdir(mode=0o755, exist_ok=True)
    except FileExistsError:
        return  # a file of the user's called `teams`: theirs to keep
    for entry in os.scandir(teams_dir):
        if entry.is_symlink():
            target = os.readlink(entry.path)
            if target.startswith(str(root) + "/") and wanted.get(entry.name) != target:
                os.unlink(entry.path)
    for team, target in wanted.items():
        link = teams_dir / team
        if not os.path.lexists(link):
            os.symlink(target, link)


def _ensure_group(name: str) -> grp.struct_group:
    try:
        return grp.getgrnam(name)
    except KeyError:
        _run("groupadd", "--system", name)
        return grp.getgrnam(name)


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, text=True)
