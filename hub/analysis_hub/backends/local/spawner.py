"""The local backend's spawner: JupyterHub's LocalProcessSpawner, given profiles.

Contract, on top of LocalProcessSpawner:
- The spawn form and `user_options` pick a profile from the catalog
  (`catalog_spawner.CatalogProfileForm`, shared with the docker backend); a
  request the catalog does not allow for the user's groups, or a GPU profile
  on a machine without enough GPUs, is refused with HTTP 400 before anything
  starts.
- `start()` builds (first use) or reuses the profile image's environment,
  reporting progress on the spawn page, then runs that environment's
  `jupyterhub-singleuser`:
  - as the Unix user `jupyter-<name>` with a private home when isolation is
    on (the hub runs as root), else as the hub's own user;
  - inside a cgroup holding the profile's CPU and memory limits, when the
    host allows it; a server whose processes the kernel kills for memory is
    stopped whole and the hub pages say why;
  - with its own `CUDA_VISIBLE_DEVICES` from the machine's GPU pool;
  - with `~/teams/<team>` for each team folder the user's groups give, the
    Unix user in exactly those teams' Unix groups (`runtime.team_folders`).
- Everything needed after a hub restart (pid, cgroup, GPUs, the reason the
  last server stopped) is kept in the spawner state.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner
from tornado import web
from traitlets import Bool, Unicode, default

from ...metrics import count_cull
from ...quantities import format_memory
from ...runtime.environments import EnvironmentBuildError
from ...runtime.gpus import GpuUnavailable
from ...runtime.sandbox import Placement, Sandbox, shared_sandbox
from ...runtime.team_folders import TeamFolderError
from ...runtime.unix_users import system_username
from ..catalog_spawner import CatalogProfileForm
from .translate import server_placement


class LocalProfileSpawner(CatalogProfileForm, LocalProcessSpawner):
    backend_name = "local"
    envs_dir = Unicode(config=True, help="where the per-image Python environments are built")
    homes_dir = Unicode(config=True, help="parent folder of users' home directories")
    python = Unicode("", config=True, help="interpreter for environments ('' = one all users can run)")
    isolate_users = Bool(False, config=True, help="run each hub user as Unix user jupyter-<name>")
    use_cgroups = Bool(False, config=True, help="enforce profile CPU/memory limits with cgroups")
    cgroup_parent = Unicode("analysis-hub", config=True, help="this hub's cgroup, parent of its servers'")
    teams_dir = Unicode("", config=True, help="where the team folders live ('' = no team folders)")

    stop_reason = Unicode("", help="why the last server stopped, when the hub stopped it")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.placement: Placement | None = None
        self._env: Path | None = None
        self._profile_env: dict[str, str] = {}
        self._events: list[dict] = []

    @property
    def sandbox(self) -> Sandbox:
        cgroup_parent = self.cgroup_parent if self.use_cgroups else None
        return shared_sandbox(
            self.envs_dir, self.images_dir, self.python or None, self.gpu_pool, cgroup_parent
        )

    # ---- start / poll / stop ------------------------------------------------

    async def start(self):
        self.stop_reason = ""
        self._events = []
        resolved = self.resolve_default_profile()
        r = resolved.resources
        # JupyterHub's own traits: the server sees them as $MEM_LIMIT, $CPU_LIMIT...
        self.mem_limit, self.cpu_limit = r.memory_limit, r.cpu_limit
        self.mem_guarantee, self.cpu_guarantee = r.memory_guarantee, r.cpu_guarantee
        self._progress(5, f"Starting profile {resolved.profile.display_name}")
        self._env = await self._ensure_environment(resolved.image)
        self.cmd = [str(self._env / "bin" / "jupyterhub-singleuser")]
        self._profile_env = dict(resolved.env)
        request = server_placement(
            resolved,
            name=self.system_user + (f"-{self.name}" if self.name else ""),
            owner=self.owner,
            user=self.system_user if self.isolate_users else None,
            home=self.home,
            teams=self.team_folders,
            teams_root=Path(self.teams_dir) if self.teams_dir else None,
        )
        try:
            self.placement = await self.sandbox.enter(request)
        except GpuUnavailable as e:
            raise web.HTTPError(503, str(e)) from None
        except TeamFolderError as e:
            raise web.HTTPError(500, str(e)) from None
        except OSError as e:
            raise web.HTTPError(
                500,
                f"Could not apply the profile's limits with cgroups ({e}); an admin can set"
                " local.cgroups: off to run without limits",
            ) from None
        self.gpu_ids = list(self.placement.gpu_ids)
        self._progress(90, "Starting the Jupyter server")
        return await super().start()

    async def poll(self):
        placement = self.placement  # before super().poll(), which clears the state of a dead server
        status = await super().poll()
        if placement and self.sandbox.oom_killed(placement):
            self.stop_reason = (
                f"Your server was stopped because it used more than its memory limit of"
                f" {self._memory_limit_text()}. Unsaved work in its kernels is lost;"
                " pick a larger size or use less memory."
            )
            self.log.warning("Server %s exceeded its memory limit; stopping it", self._log_name)
            count_cull("memory_limit")
            self.sandbox.kill_all(placement)
            for _ in range(20):
                status = await super().poll()
                if status is not None:
                    break
                await asyncio.sleep(0.1)
            status = 137 if status is None or status == 0 else status
        if status is not None:
            self._release(placement)
        return status

    async def stop(self, now=False):
        placement = self.placement  # before super().stop() clears the state
        await super().stop(now=now)
        self._release(placement)

    async def progress(self):
        sent = 0
        while True:
            while sent < len(self._events):
                yield self._events[sent]
                sent += 1
            if self.pid or not self._start_pending:
                break
            await asyncio.sleep(0.5)

    # ---- state kept across hub restarts -------------------------------------

    def get_state(self):
        state = super().get_state()
        if self.placement and self.placement.cgroup:
            state["cgroup"] = self.placement.cgroup
        if self.stop_reason:
            state["stop_reason"] = self.stop_reason
        if self.mem_limit:
            state["mem_limit"] = self.mem_limit
        return state

    def load_state(self, state):
        super().load_state(state)
        self.stop_reason = state.get("stop_reason", "")
        self.mem_limit = state.get("mem_limit") or self.mem_limit
        if state.get("cgroup") or self.gpu_ids:
            self.placement = Placement(
                name=state.get("cgroup", ""),
                owner=self.owner,
                image="",
                user=None,
                home=self.home,
                workdir=self.home,
                gpu_ids=tuple(self.gpu_ids),
                cgroup=state.get("cgroup", ""),
            )

    def clear_state(self):
        # The stop reason outlives the server on purpose: the hub page shows it.
        super().clear_state()
        self.placement = None

    # ---- process details ----------------------------------------------------

    @property
    def system_user(self) -> str:
        return system_username(self.user.name)

    @property
    def home(self) -> Path:
        name = self.system_user if self.isolate_users else self.user.name
        return Path(self.homes_dir) / name

    def make_preexec_fn(self, name):
        # The home comes from settings, not /etc/passwd: homes_dir may move.
        return self.sandbox.preexec(self.placement)

    def user_env(self, env):
        env["USER"] = self.system_user if self.isolate_users else self.user.name
        env["HOME"] = str(self.home)
        env["SHELL"] = "/bin/bash"
        return env

    def get_env(self):
        env = super().get_env()
        env.update(self._profile_env)
        env.update(self.sandbox.environ(self.placement, self._env))
        return env

    @default("env_keep")
    def _default_env_keep(self):
        return ["LANG", "LC_ALL", "JAVA_HOME", "SSL_CERT_FILE", "PIP_CONFIG_FILE"]

    # ---- helpers ------------------------------------------------------------

    def _progress(self, percent: int, message: str) -> None:
        self.log.info("%s: %s", self._log_name, message)
        self._events.append({"progress": percent, "message": message})

    async def _ensure_environment(self, image: str) -> Path:
        # The build's share of the spawn page's bar: 10 to 85 %, as far as the build says it is
        # (`pip_progress.Step.done`); a line that doesn't say keeps the bar where it is.
        percent = 10

        def report(line: str) -> None:
            nonlocal percent
            done = getattr(line, "done", None)
            if done is not None:
                percent = max(percent, 10 + round(75 * done))
            self._progress(percent, str(line))

        began = time.perf_counter()
        try:
            return await self.sandbox.environment(image, report)
        except EnvironmentBuildError as e:
            self._progress(100, f"Building the {image} environment failed")
            self.failure_reason = "environment_build"
            raise web.HTTPError(500, f"Could not build the {image} environment: {e}") from None
        finally:
            self.phase_seconds["environment"] = time.perf_counter() - began

    def _memory_limit_text(self) -> str:
        return format_memory(self.mem_limit) if self.mem_limit else "(none)"

    def _release(self, placement: Placement | None) -> None:
        if placement:
            self.sandbox.leave(placement)
        self.gpu_ids = []
