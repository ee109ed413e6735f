"""The local backend's pipeline executor: papermill on this machine, in the sandbox (I/O).

Contract (see `pipelines.executor`): `LocalExecutor.run(spec, notebook, out_dir)` executes the notebook
with papermill from the profile's own environment (every image's lock file
includes papermill), as the team's run user (`RunUsers`: a Unix user of its
own per team, so one team's notebook can't read another team's runs), inside
a cgroup holding the version's CPU and memory limits, and kills it at the
deployment's timeout. It leaves in `out_dir` (0700, the run user's):
`output.ipynb` (saved after every cell, so a run that dies keeps its partial
output), `output.html` and `log.txt`, and returns a `RunOutcome`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import signal
from pathlib import Path

from ...pipelines.executor import INPUT, LOG, PARAMETERS, RunOutcome, finish_outcome, papermill_arguments
from ...pipelines.specs import RunSpec
from ...pipelines.state import PRIVATE_DIR
from ...quantities import format_memory
from ...runtime import cgroups
from ...runtime.environments import EnvironmentBuilder, EnvironmentBuildError
from ...runtime.unix_users import ensure_system_user, team_run_username


class RunUsers:
    """Which Unix user a team's runs execute as: the team's own, created on first use (needs root),
    or one `fixed` user for every team when the admin sets `pipelines.run_as`."""

    def __init__(self, homes: Path, fixed: str | None = None):
        self.homes, self.fixed = homes, fixed

    def for_team(self, team: str) -> pwd.struct_passwd:
        if self.fixed:
            return pwd.getpwnam(self.fixed)
        name = team_run_username(team)
        return ensure_system_user(name, self.homes / name)


class LocalExecutor:
    def __init__(self, builder: EnvironmentBuilder, run_users: RunUsers | None, cgroup_parent: str | None):
        self.builder = builder
        self.run_users = run_users
        self.cgroup_parent = cgroup_parent if cgroup_parent and cgroups.available() else None

    async def run(self, spec: RunSpec, notebook: str, out_dir: Path) -> RunOutcome:
        out_dir.mkdir(parents=True, exist_ok=True)
        out_dir.chmod(PRIVATE_DIR)  # the run user's and the service's only (see state.py)
        log_path = out_dir / LOG
        try:
            env_dir = await self.builder.ensure(spec.image)
        except EnvironmentBuildError as e:
            log_path.write_text(str(e))
            return RunOutcome("failed", None, f"the {spec.image} environment could not be built: {e}")
        (out_dir / INPUT).write_text(notebook)
        (out_dir / PARAMETERS).write_text(json.dumps(spec.parameters))
        user = await asyncio.to_thread(self.run_users.for_team, spec.team) if self.run_users else None
        group = self._cgroup(spec)
        if user:
            for path in [out_dir, *out_dir.iterdir()]:
                os.chown(path, user.pw_uid, user.pw_gid)
        command = [str(env_dir / "bin" / "python"), *papermill_arguments(spec.kernel)]
        environment = {
            "PATH": f"{env_dir / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(out_dir),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            **spec.env,
        }
        with open(log_path, "wb") as log:
            process = await asyncio.create_subprocess_exec(
                *command,
                cwd=out_dir,
                env=environment,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=self._preexec(group, user),
            )
            try:
                code = await asyncio.wait_for(process.wait(), spec.timeout)
                timed_out = False
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                if group:
                    group.kill_all()
                code, timed_out = await process.wait(), True
        oom = ""
        if group and code and not timed_out and group.oom_killed():
            limit = format_memory(spec.memory_limit) if spec.memory_limit else "?"
            oom = f"the kernel was killed for using more than its memory limit ({limit})"
        if group:
            group.kill_all()  # a kernel left behind by papermill must not outlive its run
            group.remove()
        return await asyncio.to_thread(finish_outcome, spec, out_dir, code, timed_out, oom)

    def _cgroup(self, spec: RunSpec) -> cgroups.Cgroup | None:
        if not self.cgroup_parent:
            return None
        return cgroups.Cgroup.create(
            self.cgroup_parent, f"run-{spec.run_id}", spec.memory_limit, spec.cpu_limit
        )

    def _preexec(self, group: cgroups.Cgroup | None, user: pwd.struct_passwd | None):
        def preexec():
            # In the child, before exec: join the run's cgroup (as root), then drop to the run user.
            if group:
                group.attach_self()
            if user:
                os.setgroups([])
                os.setgid(user.pw_gid)
                os.setuid(user.pw_uid)

        return preexec
