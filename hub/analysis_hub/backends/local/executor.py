"""The local backend's pipeline executor: papermill on this machine, in the sandbox (I/O).

Contract (see `pipelines.executor`): `LocalExecutor.run(spec, notebook, out_dir)`
runs the notebook with papermill from the profile image's own environment
(every image's lock file includes papermill) through the same
`runtime.sandbox.Sandbox` the local spawner uses:
- as the team's run user (`RunUsers`: a Unix user of its own per team,
  `pipelines-<team>`, so one team's notebook can't read another team's runs);
- in a cgroup holding the version's CPU and memory limits;
- with the version's GPUs taken from the machine's pool shared with the
  hub's servers (`CUDA_VISIBLE_DEVICES` names exactly them; none: empty);
- a workflow's steps share the run's folder (`spec.run_folder`, named by
  `ANALYSIS_HUB_RUN_FOLDER`), the team's run user's like the step's own;
- with the team's folder at `~/teams/<team>` (HOME is the run folder), as
  in the team's servers, when the team has one: the run user is in the
  team's Unix group, so a notebook reading `~/teams/<team>/data.csv` in a
  server runs unchanged as a pipeline;
- killed at the deployment's timeout, and when the run is cancelled (the
  service stopping).
It leaves in `out_dir` (0700, the run user's) `output.ipynb`, `output.html`
and `log.txt`, and returns a `RunOutcome`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from ...pipelines.engine.executor import (
    INPUT,
    LOG,
    PARAMETERS,
    Executor,
    RunOutcome,
    finish_outcome,
    papermill_arguments,
)
from ...pipelines.publishing.specs import RunSpec
from ...pipelines.store.state_folder import PRIVATE_DIR
from ...quantities import format_memory
from ...runtime.environments import EnvironmentBuildError
from ...runtime.gpus import GpuUnavailable, machine_gpu_pool
from ...runtime.sandbox import Placement, Sandbox, shared_sandbox
from ...runtime.team_folders import TeamFolderError
from ...runtime.unix_users import team_run_username
from ...teams import member_teams
from .translate import run_placement, team_folders_root


@dataclass(frozen=True)
class RunUsers:
    """Which Unix user a team's runs execute as: the team's own, created on first use (needs root),
    or one `fixed` user for every team when the admin sets `pipelines.run_as`."""

    homes: Path
    fixed: str | None = None

    def for_team(self, team: str) -> tuple[str, Path]:
        name = self.fixed or team_run_username(team)
        return name, self.homes / name


class LocalExecutor(Executor):
    def __init__(
        self,
        sandbox: Sandbox,
        run_users: RunUsers | None,
        teams: dict | None = None,
        teams_root: Path | None = None,
    ):
        self.sandbox = sandbox
        self.run_users = run_users
        self.teams = teams or {}
        self.teams_root = teams_root

    async def prepare(self, spec: RunSpec) -> None:
        pass  # the environment is built at the first run, under the builder's lock

    async def run(self, spec: RunSpec, notebook: str, out_dir: Path) -> RunOutcome:
        out_dir.mkdir(parents=True, exist_ok=True)
        out_dir.chmod(PRIVATE_DIR)  # the run user's and the service's only (store/state_folder.py)
        if spec.run_folder is not None:
            spec.run_folder.mkdir(exist_ok=True)
            for path in _workflow_folders(spec, out_dir)[:3]:
                path.chmod(PRIVATE_DIR)
        log_path = out_dir / LOG
        try:
            env_dir = await self.sandbox.environment(spec.image)
        except EnvironmentBuildError as e:
            log_path.write_text(str(e))
            return RunOutcome("failed", None, f"the {spec.image} environment could not be built: {e}")
        (out_dir / INPUT).write_text(notebook)
        (out_dir / PARAMETERS).write_text(json.dumps(spec.parameters))
        user, home = self.run_users.for_team(spec.team) if self.run_users else (None, out_dir)
        request = run_placement(
            spec,
            user=user,
            home=home,
            workdir=out_dir,
            # A run is its team's: that team's folder only.
            teams=member_teams(self.teams, {spec.team}),
            teams_root=self.teams_root,
        )
        try:
            placement = await self.sandbox.enter(request)
        except GpuUnavailable as e:
            log_path.write_text(str(e))
            return RunOutcome("failed", None, f"no GPU for the run: {e}")
        except TeamFolderError as e:
            log_path.write_text(str(e))
            return RunOutcome("failed", None, str(e))
        try:
            if user:
                account = await asyncio.to_thread(_account, user)
                for path in [out_dir, *out_dir.iterdir(), *_workflow_folders(spec, out_dir)]:
                    os.chown(path, account[0], account[1])
            code, timed_out = await self._papermill(spec, placement, env_dir, out_dir, log_path)
            oom = ""
            if code and not timed_out and self.sandbox.oom_killed(placement):
                limit = (
                    format_memory(spec.profile.resources.memory_limit)
                    if spec.profile.resources.memory_limit
                    else "?"
                )
                oom = f"the kernel was killed for using more than its memory limit ({limit})"
        finally:
            self.sandbox.leave(placement)  # a kernel left behind by papermill must not outlive its run
        return await asyncio.to_thread(finish_outcome, spec, out_dir, code, timed_out, oom)

    async def _papermill(self, spec, placement, env_dir, out_dir, log_path) -> tuple[int | None, bool]:
        environment = {
            **self.sandbox.environ(placement, env_dir),
            "HOME": str(out_dir),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            **spec.env,
        }
        with open(log_path, "wb") as log:
            process = await asyncio.create_subprocess_exec(
                str(env_dir / "bin" / "python"),
                *papermill_arguments(spec.kernel),
                cwd=out_dir,
                env=environment,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=self.sandbox.preexec(placement),
            )
            try:
                return await asyncio.wait_for(process.wait(), spec.timeout), False
            except TimeoutError:
                self._kill(process, placement)
                return await process.wait(), True
            except asyncio.CancelledError:
                # The service is stopping: the run must not outlive it (the next start marks it
                # interrupted). The process is reaped by the event loop's child watcher.
                self._kill(process, placement)
                raise

    def _kill(self, process, placement: Placement) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        self.sandbox.kill_all(placement)


def _workflow_folders(spec: RunSpec, out_dir: Path) -> list[Path]:
    """A workflow step's folders besides its own: the run's, the steps', the shared run folder,
    then everything in it (a repaired run's copy of the earlier run's data): the run user's."""
    if spec.run_folder is None:
        return []
    shared = spec.run_folder
    return [shared.parent, out_dir.parent, shared, *shared.rglob("*")]


def _account(user: str) -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


def local_executor(settings) -> LocalExecutor:
    """The local backend's executor from settings (in the pipelines service's process)."""
    config = settings.pipelines
    # As root, each team's runs get a Unix user of its own; otherwise they run as the hub's user.
    run_users = (
        RunUsers(config.data_dir / "homes", config.run_as) if os.geteuid() == 0 or config.run_as else None
    )
    cgroup_parent = settings.instance_name if settings.local.cgroups != "off" else None
    pool = machine_gpu_pool(settings.gpu_state_file)
    sandbox = shared_sandbox(
        settings.local.envs_dir, settings.images_dir, settings.local.python, pool, cgroup_parent
    )
    return LocalExecutor(sandbox, run_users, dict(settings.teams), team_folders_root(settings))
