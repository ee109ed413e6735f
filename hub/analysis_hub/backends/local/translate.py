"""A resolved profile -> what the local backend runs: pure translations.

Contract:
- `server_placement(resolved, ...)` and `run_placement(spec, ...)` are the
  sandbox's `Placement` for a user's server and for a pipeline run: the
  profile's image, limits and GPUs, the one place the local backend reads
  them. Guarantees have no meaning for one machine's cgroups (nothing else
  is scheduled against them) and are left out, as are node selectors and
  tolerations (Kubernetes only).
- `team_folders_root(settings)` and `isolates_users(settings, host)` are the
  settings' answers the spawner (via `wiring`) and the executor share.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ...catalog import ResolvedProfile
from ...runtime.sandbox import Placement
from ...teams import TeamFolder


def server_placement(
    resolved: ResolvedProfile,
    *,
    name: str,
    owner: str,
    user: str | None,
    home: Path,
    teams: tuple[TeamFolder, ...],
    teams_root: Path | None,
) -> Placement:
    r = resolved.resources
    return Placement(
        name=name,
        owner=owner,
        image=resolved.image,
        user=user,
        home=home,
        workdir=home,
        memory_limit=r.memory_limit,
        cpu_limit=r.cpu_limit,
        gpus=r.gpus,
        teams=teams,
        teams_root=teams_root,
    )


def run_placement(
    spec,
    *,
    user: str | None,
    home: Path,
    workdir: Path,
    teams: tuple[TeamFolder, ...],
    teams_root: Path | None,
) -> Placement:
    """A run (a workflow's step) in its own folder `workdir`, holding what its step holds."""
    server = server_placement(
        spec.profile,
        name=spec.holder("-"),
        owner=spec.holder("/"),
        user=user,
        home=home,
        teams=teams,
        teams_root=teams_root,
    )
    return dataclasses.replace(server, workdir=workdir, teams_home=workdir)


def team_folders_root(settings) -> Path:
    """Where the team folders live on this machine, for servers and pipeline runs alike."""
    return settings.data_dir / "teams"


def isolates_users(settings, host) -> bool:
    local = settings.local
    return local.isolation == "unix-users" or (local.isolation == "auto" and host.is_root)
