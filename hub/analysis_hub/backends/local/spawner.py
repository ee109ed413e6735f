"""The local backend's spawner: JupyterHub's LocalProcessSpawner, given profiles.

Contract, on top of LocalProcessSpawner:
- The spawn form and `user_options` pick a profile from the catalog
  (`catalog_spawner.CatalogProfiles`, shared with the docker backend); a
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
  - with its own `CUDA_VISIBLE_DEVICES` from the machine's GPU pool.
- Everything needed after a hub restart (pid, cgroup, GPUs, the reason the
  last server stopped) is kept in the spawner state.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner, set_user_setuid
from tornado import web
from traitlets import Bool, Integer, Unicode, default

from ...quantities import format_memory
from ...runtime import cgroups
from ...runtime.environments import EnvironmentBuilder, EnvironmentBuildError
from ...runtime.gpus import GpuUnavailable
from ...runtime.unix_users import ensure_system_user, system_username
from ..catalog_spawner import CatalogProfiles, gpu_pool
from .translate import local_server_spec

_builders: dict[tuple, EnvironmentBuilder] = {}


class LocalProfileSpawner(CatalogProfiles, LocalProcessSpawner):
    envs_dir = Unicode(config=True, help="where the per-image Python environments are built")
    homes_dir = Unicode(config=True, help="parent folder of users' home directories")
    python = Unicode("", config=True, help="interpreter for environments ('' = one all users can run)")
    isolate_users = Bool(False, config=True, help="run each hub user as Unix user jupyter-<name>")
    use_cgroups = Bool(False, config=True, help="enforce profile CPU/memory limits with cgroups")
    cgroup_parent = Unicode("analysis-hub", config=True, help="this hub's cgroup, parent of its servers'")
    activity_interval = Integer(60, config=True, help="seconds between the server's activity reports")

    stop_reason = Unicode("", help="why the last server stopped, when the hub stopped it")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.gpu_indices: list[str] = []
        self.cgroup_name = ""
        self._events: list[dict] = []

    # ---- start / poll / stop ------------------------------------------------

    async def start(self):
        self.stop_reason = ""
        self._events = []
        spec = local_server_spec(self.resolve_default_profile())
        self.mem_limit, self.cpu_limit = spec.memory_limit, spec.cpu_limit
        self.mem_guarantee, self.cpu_guarantee = spec.memory_guarantee, spec.cpu_guarantee
        self._progress(5, f"Starting profile {spec.display_name}")

        env = await self._ensure_environment(spec.image)
        self.cmd = [str(env / "bin" / "jupyterhub-singleuser")]
        self._spec, self._env = spec, env
        self._prepare_home()
        try:
            self.gpu_indices = gpu_pool().allocate(self._owner, spec.gpus)
        except GpuUnavailable as e:
            raise web.HTTPError(503, str(e)) from None
        if self.use_cgroups:
            self.cgroup_name = self.system_user + (f"-{self.name}" if self.name else "")
            try:
                await asyncio.to_thread(
                    cgroups.Cgroup.create,
                    self.cgroup_parent,
                    self.cgroup_name,
                    spec.memory_limit,
                    spec.cpu_limit,
                )
            except OSError as e:
                self._release()
                raise web.HTTPError(
                    500,
                    f"Could not apply the profile's limits with cgroups ({e}); an admin can set"
                    " local.cgroups: off to run without limits",
                ) from None
        self._progress(90, "Starting the Jupyter server")
        return await super().start()

    async def poll(self):
        group = self._cgroup()  # before super().poll(), which clears the state of a dead server
        status = await super().poll()
        if group and group.oom_killed():
            self.stop_reason = (
                f"Your server was stopped because it used more than its memory limit of"
                f" {self._memory_limit_text()}. Unsaved work in its kernels is lost;"
                " pick a larger size or use less memory."
            )
            self.log.warning("Server %s exceeded its memory limit; stopping it", self._log_name)
            group.kill_all()
            for _ in range(20):
                status = await super().poll()
                if status is not None:
                    break
                await asyncio.sleep(0.1)
            status = 137 if status is None or status == 0 else status
        if status is not None:
            self._release(group)
        return status

    async def stop(self, now=False):
        group = self._cgroup()  # before super().stop() clears the state
        await super().stop(now=now)
        if group:
            group.kill_all()  # kernels or terminals the server left behind
        self._release(group)

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
        state.update(
            {
                k: v
                for k, v in {
                    "gpus": self.gpu_indices,
                    "cgroup": self.cgroup_name,
                    "stop_reason": self.stop_reason,
                    "profile": self.resolved.slug if self.resolved else "",
                    "mem_limit": self.mem_limit,
                }.items()
                if v
            }
        )
        return state

    def load_state(self, state):
        super().load_state(state)
        self.gpu_indices = state.get("gpus", [])
        self.cgroup_name = state.get("cgroup", "")
        self.stop_reason = state.get("stop_reason", "")
        self.mem_limit = state.get("mem_limit") or self.mem_limit
        if self.gpu_indices:
            gpu_pool().claim(self._owner, self.gpu_indices)

    def clear_state(self):
        # The stop reason outlives the server on purpose: the hub page shows it.
        super().clear_state()
        self.gpu_indices = []
        self.cgroup_name = ""

    # ---- process details ----------------------------------------------------

    @property
    def _owner(self) -> str:
        return f"{self.user.name}-{self.name}" if self.name else self.user.name

    @property
    def system_user(self) -> str:
        return system_username(self.user.name)

    @property
    def home(self) -> Path:
        name = self.system_user if self.isolate_users else self.user.name
        return Path(self.homes_dir) / name

    def _prepare_home(self):
        if self.isolate_users:
            ensure_system_user(self.system_user, self.home)
        else:
            self.home.mkdir(parents=True, exist_ok=True, mode=0o700)

    def make_preexec_fn(self, name):
        group = self._cgroup()
        # The home comes from settings, not /etc/passwd: homes_dir may move.
        become_user = set_user_setuid(self.system_user, chdir=False) if self.isolate_users else None
        home = str(self.home)

        def preexec():
            if group:
                group.attach_self()
            if become_user:
                become_user()  # setgid, setgroups, setuid
            os.chdir(home)

        return preexec

    def user_env(self, env):
        env["USER"] = self.system_user if self.isolate_users else self.user.name
        env["HOME"] = str(self.home)
        env["SHELL"] = "/bin/bash"
        return env

    def get_env(self):
        env = super().get_env()
        env.update(self._spec.env)
        env.update(
            {
                "PATH": f"{self._env / 'bin'}:/usr/local/bin:/usr/bin:/bin",
                "VIRTUAL_ENV": str(self._env),
                "JUPYTERHUB_ACTIVITY_INTERVAL": str(self.activity_interval),
                "ANALYSIS_HUB_PROFILE": self._spec.slug,
                # An empty list hides GPUs from CPU profiles on a GPU machine.
                "CUDA_VISIBLE_DEVICES": ",".join(self.gpu_indices),
            }
        )
        return env

    @default("env_keep")
    def _default_env_keep(self):
        return ["LANG", "LC_ALL", "JAVA_HOME", "SSL_CERT_FILE", "PIP_CONFIG_FILE"]

    # ---- helpers ------------------------------------------------------------

    def _progress(self, percent: int, message: str) -> None:
        self.log.info("%s: %s", self._log_name, message)
        self._events.append({"progress": percent, "message": message})

    async def _ensure_environment(self, image: str) -> Path:
        key = (self.envs_dir, self.images_dir, self.python)
        if key not in _builders:
            _builders[key] = EnvironmentBuilder(
                self.envs_dir, self.images_dir, self.python or None, with_cuda=gpu_pool().total > 0
            )
        builder = _builders[key]
        step = iter(range(10, 85))

        def report(line: str) -> None:
            self._progress(next(step, 85), line)

        try:
            return await builder.ensure(image, report)
        except EnvironmentBuildError as e:
            self._progress(100, f"Building the {image} environment failed")
            raise web.HTTPError(500, f"Could not build the {image} environment: {e}") from None

    def _cgroup(self) -> cgroups.Cgroup | None:
        return cgroups.Cgroup.open(self.cgroup_parent, self.cgroup_name) if self.cgroup_name else None

    def _memory_limit_text(self) -> str:
        return format_memory(self.mem_limit) if self.mem_limit else "(none)"

    def _release(self, group: cgroups.Cgroup | None = None) -> None:
        gpu_pool().release(self._owner)
        group = group or self._cgroup()
        if group:
            group.remove()
