"""The docker backend's pipeline executor: papermill in a container of the version's image (I/O).

Contract (see `pipelines.executor`): `DockerExecutor.run(spec, notebook, out_dir)`
runs the notebook with papermill in a container of the image built for
`spec.image` (the same tags the spawner uses; never pulled), as the image's
jovyan user (uid 1000), with the version's CPU and memory limits, exactly its
GPUs, no capabilities, no-new-privileges, on the hub's container network
(no route to other containers or to the host's services; see
`translate.host_firewall`). The settings are `translate.docker_run_settings`,
the same rules as users' servers. The container is killed at the timeout and
removed afterwards; it leaves in `out_dir` what every executor leaves:
`output.ipynb`, `output.html` and `log.txt` (the container's output, written
while it runs).

The run folder: `out_dir` stays the service's own, 0700 (pipelines/store/state_folder.py),
so no other host user can enter it. The container gets its subfolder `work/`,
mounted at `images.RUN_DIR`, owned by uid 1000 (or open to all when the
service can't chown, still unreachable behind `out_dir`); the files papermill
writes there are moved up into `out_dir` when the container has ended.

Team folders: a run of a team with a team folder mounts the team's volume at
/home/jovyan/teams/<team> (`team_volumes.py`), where its members' servers
have it, so a notebook reading `~/teams/<team>/...` runs unchanged.

GPUs: a run takes `spec.profile.resources.gpus` from the machine's pool, the one users' servers
take from (`runtime.gpus.machine_gpu_pool`, shared across processes), as
owner `run/<id>` (`run/<id>/<step>` for a workflow's step), and gives them
back when its container is gone.

`docker_executor(settings)` builds it for the pipelines service (`wiring.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import threading
from pathlib import Path

import docker
import docker.errors

from ...images import JOVYAN_GID, JOVYAN_UID, discover_images, hadoop_images
from ...pipelines.engine.executor import INPUT, LOG, PARAMETERS, Executor, RunOutcome, finish_outcome
from ...pipelines.publishing.specs import RunSpec
from ...pipelines.store.state_folder import PRIVATE_DIR
from ...quantities import format_memory
from ...runtime.gpus import GpuPool, GpuUnavailable, machine_gpu_pool
from ...teams import TeamFolder, member_teams
from .network import NetworkError, ensure_container_network
from .spawner import image_references
from .team_volumes import TeamVolumeError, ensure_team_volumes, run_folders, team_volumes
from .translate import DockerHostFacts, ImageNotBuilt, docker_run_settings, host_ports

WORK = "work"
KILLED = 137  # what the engine reports for a SIGKILLed container


class DockerExecutor(Executor):
    def __init__(
        self,
        image_tags_file: str,
        image_references: dict[str, str],
        name_prefix: str,
        host_ports: tuple[int, ...],
        gpus: GpuPool,
        network_subnet: str | None = None,
        hadoop_conf_dir: str | None = None,
        hadoop_images: frozenset[str] = frozenset(),
        client: docker.APIClient | None = None,
        teams: tuple[TeamFolder, ...] = (),
    ):
        self.image_tags_file, self.image_references = image_tags_file, dict(image_references)
        self.name_prefix, self.host_ports, self.network_subnet = name_prefix, host_ports, network_subnet
        self.gpus, self.hadoop_conf_dir, self.hadoop_images = gpus, hadoop_conf_dir, hadoop_images
        self._client = client
        self.teams = teams  # every team folder the settings declare; a run mounts its team's

    @property
    def client(self) -> docker.APIClient:
        if self._client is None:
            self._client = docker.APIClient(version="auto")
        return self._client

    async def prepare(self, spec: RunSpec) -> None:
        """Nothing to store ahead of a run: the image is built by `make images`."""

    async def run(self, spec: RunSpec, notebook: str, out_dir: Path) -> RunOutcome:
        out_dir.mkdir(parents=True, exist_ok=True)
        out_dir.chmod(PRIVATE_DIR)  # the service's only (store/state_folder.py); the container sees work/
        log_path = out_dir / LOG
        work = container_folder(out_dir)
        if spec.run_folder is not None:  # a workflow's shared folder: the container user's
            out_dir.parent.chmod(PRIVATE_DIR)
            shared_folder(spec.run_folder)
        (work / INPUT).write_text(notebook)
        (work / PARAMETERS).write_text(json.dumps(spec.parameters))
        for path in (work / INPUT, work / PARAMETERS):
            _give_to_jovyan(path, 0o600)
        owner = spec.holder("/")
        try:
            gpu_ids = await asyncio.to_thread(self.gpus.allocate, owner, spec.profile.resources.gpus)
        except GpuUnavailable as e:
            collect_outputs(work, out_dir)
            log_path.write_text(f"{e}\n")
            return RunOutcome("failed", None, f"no GPU for the run: {e}")
        try:
            ended = await self._run(spec, work, log_path, tuple(gpu_ids))
        finally:
            collect_outputs(work, out_dir)  # the container is gone: nothing writes there any more
            if spec.profile.resources.gpus:
                await asyncio.to_thread(self.gpus.release, owner)
        if isinstance(ended, RunOutcome):
            return ended
        code, timed_out, oom = ended
        return await asyncio.to_thread(finish_outcome, spec, out_dir, code, timed_out, oom)

    async def _run(self, spec: RunSpec, work: Path, log_path: Path, gpu_ids: tuple[str, ...]):
        """The container's exit (code, timed out, out-of-memory reason), or why there was none."""
        host = DockerHostFacts(
            images=image_references(self.image_tags_file, self.image_references),
            name_prefix=self.name_prefix,
            hadoop_conf_dir=self.hadoop_conf_dir,
            hadoop_images=self.hadoop_images,
            gpu_ids=gpu_ids,
            teams=self.teams,
        )
        try:
            settings = docker_run_settings(spec, host, str(work))
            await asyncio.to_thread(
                ensure_team_volumes,
                self.client,
                list(team_volumes(self.name_prefix, run_folders(self.teams, spec.team))),
                settings.image,
            )
            await asyncio.to_thread(
                ensure_container_network,
                self.client,
                self.name_prefix,
                self.network_subnet,
                self.host_ports,
            )
            container = await asyncio.to_thread(self._create, settings)
        except (ImageNotBuilt, NetworkError, TeamVolumeError, docker.errors.DockerException) as e:
            return _not_run(log_path, "created", e)
        try:
            await asyncio.to_thread(self.client.start, container)
        except docker.errors.DockerException as e:  # e.g. GPUs the engine can't grant
            await asyncio.to_thread(self._remove, container)
            return _not_run(log_path, "started", e)
        try:
            return await self._execute(container, spec, log_path)
        finally:
            await asyncio.to_thread(self._remove, container)

    def _remove(self, container: str) -> None:
        with contextlib.suppress(docker.errors.DockerException):
            self.client.remove_container(container, force=True)

    def _create(self, settings) -> str:
        try:
            self.client.inspect_image(settings.image)
        except docker.errors.ImageNotFound:
            raise ImageNotBuilt(
                f"The image {settings.image} is not on this machine; build it with `make images`"
            ) from None
        # A container of an earlier attempt at this run (a crashed service) is in the way.
        with contextlib.suppress(docker.errors.NotFound):
            self.client.remove_container(settings.name, force=True)
        created = self.client.create_container(
            settings.image,
            command=settings.command,
            name=settings.name,
            environment=settings.environment,
            host_config=self.client.create_host_config(**settings.host_config),
            **settings.create_kwargs,
        )
        return created["Id"]

    async def _execute(self, container: str, spec: RunSpec, log_path: Path) -> tuple[int | None, bool, str]:
        copier = threading.Thread(target=self._copy_logs, args=(container, log_path), daemon=True)
        copier.start()
        timed_out = False
        try:
            result = await asyncio.wait_for(asyncio.to_thread(self.client.wait, container), spec.timeout)
        except TimeoutError:
            timed_out = True
            with contextlib.suppress(docker.errors.APIError):
                await asyncio.to_thread(self.client.kill, container)
            result = await asyncio.to_thread(self.client.wait, container)
        await asyncio.to_thread(copier.join, 30)
        state = (await asyncio.to_thread(self.client.inspect_container, container))["State"]
        code = result.get("StatusCode", KILLED)
        oom = ""
        if code and not timed_out and state.get("OOMKilled"):
            limit = (
                format_memory(spec.profile.resources.memory_limit)
                if spec.profile.resources.memory_limit
                else "?"
            )
            oom = f"the kernel was killed for using more than its memory limit ({limit})"
        return code, timed_out, oom

    def _copy_logs(self, container: str, log_path: Path) -> None:
        # Written as it comes, so the run's log can be read while it runs.
        with open(log_path, "wb") as log, contextlib.suppress(docker.errors.DockerException):
            for chunk in self.client.logs(container, stream=True, follow=True):
                log.write(chunk)
                log.flush()


def docker_executor(settings) -> DockerExecutor:
    """The docker backend's executor from settings (in the pipelines service's process)."""
    docker_settings = settings.docker
    hadoop_conf_dir = docker_settings.hadoop_conf_dir
    return DockerExecutor(
        str(docker_settings.image_tags_file),
        dict(docker_settings.images),
        settings.instance_name,
        host_ports(settings),
        machine_gpu_pool(settings.gpu_state_file),
        docker_settings.network_subnet,
        str(hadoop_conf_dir) if hadoop_conf_dir else None,
        hadoop_images(discover_images(settings.images_dir)),
        teams=member_teams(settings.teams, set(settings.teams)),
    )


def _not_run(log_path: Path, what: str, error: Exception) -> RunOutcome:
    reason = getattr(error, "explanation", None) or str(error)
    log_path.write_text(f"{reason}\n")
    return RunOutcome("failed", None, f"the run's container could not be {what}: {reason}")


def container_folder(out_dir: Path) -> Path:
    work = out_dir / WORK
    if work.exists():  # an earlier attempt's leftovers
        shutil.rmtree(work)
    work.mkdir()
    if not _give_to_jovyan(work, PRIVATE_DIR):
        # Not root: open to all, yet out of reach of other host users behind out_dir's 0700.
        work.chmod(0o777)
    return work


def shared_folder(folder: Path) -> None:
    """A workflow run's folder, which every step's container mounts: kept 0700 behind the run's
    own folder, and the container user's, with what a repair copied into it."""
    folder.parent.chmod(PRIVATE_DIR)
    folder.mkdir(exist_ok=True)
    for path in [folder, *folder.rglob("*")]:
        if not path.is_symlink() and not _give_to_jovyan(path, PRIVATE_DIR if path.is_dir() else 0o600):
            # Not root: open to all, yet out of reach of other host users behind the run's 0700.
            path.chmod(0o777 if path.is_dir() else 0o666)


def _give_to_jovyan(path: Path, mode: int) -> bool:
    """The container's user owns `path` (as root); False when this process may not chown."""
    try:
        os.chown(path, JOVYAN_UID, JOVYAN_GID)
    except PermissionError:
        path.chmod(mode | 0o066 if path.is_file() else mode)
        return False
    path.chmod(mode)
    return True


def collect_outputs(work: Path, out_dir: Path) -> None:
    """The container's files move up into the run's folder, the service's again: plain files only
    (a link could point the service at any host file), and never over the log the service wrote."""
    for path in work.iterdir():
        target = out_dir / path.name
        if path.is_file() and not path.is_symlink() and path.name != LOG:
            with contextlib.suppress(PermissionError):
                os.chown(path, os.geteuid(), os.getegid())
            path.replace(target)
    shutil.rmtree(work, ignore_errors=True)
