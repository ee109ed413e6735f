"""The one-machine sandbox: where a user's server or a team's pipeline run executes (I/O).

Contract: a `Sandbox` is this hub's single way to run a process tree in
isolation on this machine; the local spawner and the local pipeline executor
both use it, and nothing else creates Unix users, cgroups or GPU
allocations. For a `Placement` request it:
- builds (first use, under a file lock) or reuses the image's Python
  environment from the image's own lock file (`environment`);
- ensures the Unix user the process runs as, with a private home
  (`jupyter-<name>` for a hub user, `pipelines-<team>` for a team's runs),
  when users are isolated (the hub runs as root);
- takes the GPUs from the machine's pool (shared with the other process
  through a locked file), and names them in `CUDA_VISIBLE_DEVICES` (an empty
  value hides every GPU from a CPU request);
- gives the Unix user exactly the team groups of the placement's team
  folders, creating the folders on first use (`team_folders`), and, in the
  child, links them at `~/teams/<team>` under the process's home;
- creates a cgroup under the hub's own (`Settings.instance_name`) holding
  the CPU and memory limits, when the host allows cgroups;
- gives a `preexec` that, in the child before exec, joins the cgroup, drops
  to the user and enters the working folder, and the environment variables
  that put the image's environment first on PATH.
`leave` undoes all of it: kills what is left in the cgroup, removes it and
releases the GPUs. What must outlive a hub restart (cgroup name, GPUs) is in
the `Placement`; the spawner keeps it in its state.
"""

from __future__ import annotations

import asyncio
import os
import pwd
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..teams import TeamFolder
from . import cgroups
from .environments import EnvironmentBuilder
from .gpus import GpuPool
from .team_folders import ensure_team_folders, link_team_folders
from .unix_users import ensure_system_user


@dataclass(frozen=True)
class Placement:
    name: str  # unique under the hub's cgroup: the cgroup's name
    owner: str  # the GPU pool's key
    image: str
    user: str | None  # Unix user to become; None: the hub's own
    home: Path
    workdir: Path
    memory_limit: int | None = None
    cpu_limit: float | None = None
    gpus: int = 0
    teams: tuple[TeamFolder, ...] = ()  # the team folders this process sees at ~/teams/<team>
    teams_root: Path | None = None  # where the team folders live (None: no team folders here)
    teams_home: Path | None = None  # the process's $HOME when it isn't `home` (a pipeline run's folder)
    # Filled in by `enter`:
    gpu_ids: tuple[str, ...] = field(default_factory=tuple)
    cgroup: str = ""


class Sandbox:
    def __init__(self, builder: EnvironmentBuilder, gpu_pool: GpuPool, cgroup_parent: str | None):
        self.builder = builder
        self.gpu_pool = gpu_pool
        # None: limits are not enforced (cgroups off, or not writable here).
        self.cgroup_parent = cgroup_parent if cgroup_parent and cgroups.available() else None

    async def environment(self, image: str, report: Callable[[str], None] = lambda line: None) -> Path:
        return await self.builder.ensure(image, report)

    async def enter(self, placement: Placement) -> Placement:
        """The user, GPUs and cgroup for `placement`; nothing is left held if a step fails."""
        if placement.user:
            await asyncio.to_thread(ensure_system_user, placement.user, placement.home)
        else:
            placement.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        if placement.teams_root:
            # Every time, with no teams too: a user who left a team leaves its Unix group.
            await asyncio.to_thread(
                ensure_team_folders, placement.teams_root, placement.teams, placement.user
            )
        gpu_ids = tuple(self.gpu_pool.allocate(placement.owner, placement.gpus))
        placement = replace(placement, gpu_ids=gpu_ids)
        if self.cgroup_parent:
            try:
                await asyncio.to_thread(
                    cgroups.Cgroup.create,
                    self.cgroup_parent,
                    placement.name,
                    placement.memory_limit,
                    placement.cpu_limit,
                )
            except OSError:
                self.gpu_pool.release(placement.owner)
                raise
            placement = replace(placement, cgroup=placement.name)
        return placement

    def cgroup(self, placement: Placement) -> cgroups.Cgroup | None:
        if not (self.cgroup_parent and placement.cgroup):
            return None
        return cgroups.Cgroup.open(self.cgroup_parent, placement.cgroup)

    def preexec(self, placement: Placement) -> Callable[[], None]:
        group = self.cgroup(placement)
        account = pwd.getpwnam(placement.user) if placement.user else None
        workdir = str(placement.workdir)
        teams_home = placement.teams_home or placement.home

        def preexec():
            # In the child, before exec: join the cgroup (as root), then drop to the user.
            if group:
                group.attach_self()
            if account:
                # initgroups: the team groups `enter` just gave the user apply to this process tree.
                os.initgroups(account.pw_name, account.pw_gid)
                os.setgid(account.pw_gid)
                os.setuid(account.pw_uid)
            if placement.teams_root:
                # As the user, so nothing is created through a link the user planted in the home.
                link_team_folders(teams_home, placement.teams, placement.teams_root)
                if placement.teams:
                    # Files made in a team folder are the team's to change, not only to read; the
                    # home stays private (0700, and each user's group is their own).
                    os.umask(0o007)
            os.chdir(workdir)

        return preexec

    def environ(self, placement: Placement, env_dir: Path) -> dict[str, str]:
        return {
            "PATH": f"{env_dir / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "VIRTUAL_ENV": str(env_dir),
            "HOME": str(placement.home),
            "USER": placement.user or pwd.getpwuid(os.getuid()).pw_name,
            # An empty list hides GPUs from CPU requests on a GPU machine.
            "CUDA_VISIBLE_DEVICES": ",".join(placement.gpu_ids),
        }

    def oom_killed(self, placement: Placement) -> bool:
        group = self.cgroup(placement)
        return bool(group and group.oom_killed())

    def kill_all(self, placement: Placement) -> None:
        group = self.cgroup(placement)
        if group:
            group.kill_all()

    def leave(self, placement: Placement) -> None:
        group = self.cgroup(placement)
        if group:
            group.kill_all()  # kernels or terminals left behind must not outlive their server or run
            group.remove()
        self.gpu_pool.release(placement.owner)


_sandboxes: dict[tuple, Sandbox] = {}


def shared_sandbox(
    envs_dir: str | Path,
    images_dir: str | Path,
    python: str | None,
    gpu_pool: GpuPool,
    cgroup_parent: str | None,
) -> Sandbox:
    """One sandbox (and so one environment builder) per configuration in this process."""
    key = (str(envs_dir), str(images_dir), python, id(gpu_pool), cgroup_parent)
    if key not in _sandboxes:
        builder = EnvironmentBuilder(envs_dir, images_dir, python, with_cuda=gpu_pool.total > 0)
        _sandboxes[key] = Sandbox(builder, gpu_pool, cgroup_parent)
    return _sandboxes[key]
