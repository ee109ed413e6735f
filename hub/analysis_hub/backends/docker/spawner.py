"""The docker backend's spawner: DockerSpawner, given the shared catalog.

Contract, on top of DockerSpawner:
- The spawn form and `user_options` pick a profile exactly as every backend
  does (`catalog_spawner.CatalogProfileForm`): an unknown or hidden profile, a bad choice,
  an extra key (an image, say) or a GPU option the machine can't serve is
  refused with HTTP 400 before anything is created.
- `start()` translates the resolved profile with the pure
  `translate.docker_server_settings` and runs the container: the image built
  for the profile (tags from scripts/build_images.py's tags file, or
  `docker.images` in settings), its limits, its GPUs, the user's home volume,
  on the hub's container network (created, with the host's rules, when
  missing: `network.ensure_container_network`), the server's port published
  on the host's 127.0.0.1 only; the hub and proxy reach the server there.
- A missing image is never pulled (there may be no registry): the spawn fails
  with a message naming the command that builds it.
- The team folders the user's groups give are named volumes
  (`team_volumes.py`), created on first use and handed to jovyan (uid 1000)
  by a one-off container of the server's image, without network.
- Containers are removed when servers stop (`remove=True`); the home volume
  stays. GPU allocations are kept in the spawner state across hub restarts.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import docker.errors
from dockerspawner import DockerSpawner
from tornado import web
from traitlets import Dict, Integer, List, Unicode, default

from ...images import HADOOP_CONF_DIR, hadoop_images
from ...kernels import kernel_display_name
from ..catalog_spawner import CatalogProfileForm
from .network import NetworkError, ensure_container_network
from .team_volumes import TeamVolumeError, ensure_team_volumes, team_volumes
from .translate import DockerHostFacts, ImageNotBuilt, build_command, docker_server_settings


def read_image_tags(path: str) -> dict[str, str]:
    """The build's tags file (image name -> tag); empty when nothing was built yet."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise ImageNotBuilt(f"cannot read the image tags file {path}: {e}") from None


def image_references(image_tags_file: str, overrides: dict[str, str]) -> dict[str, str]:
    """Catalog image name -> the local image its containers run: the build's tag, unless settings
    name another (`docker.images`). The one lookup, for servers, pipeline runs and `up`."""
    return {**read_image_tags(image_tags_file), **overrides}


def missing_images(settings) -> list[str]:
    """Catalog images with no tag in the tags file or settings (for `up`'s warnings)."""
    from ...catalog import CatalogError, load_catalog

    try:
        catalog = load_catalog(settings.catalog, settings.images_dir)
    except CatalogError:
        return []  # `up` reports catalog problems itself
    known = image_references(str(settings.docker.image_tags_file), settings.docker.images)
    return sorted({p.image for p in catalog.profiles} - set(known))


class CatalogDockerSpawner(CatalogProfileForm, DockerSpawner):
    backend_name = "docker"
    image_tags_file = Unicode(config=True, help="JSON written by scripts/build_images.py: image -> tag")
    image_references = Dict(config=True, help="catalog image name -> reference; overrides the tags file")
    hadoop_conf_dir = Unicode("", config=True, help=f"host folder mounted read-only at {HADOOP_CONF_DIR}")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._profile_env: dict[str, str] = {}

    # ---- networking: the hub's bridge, the port published on host loopback ----

    network_subnet = Unicode("", config=True, help="subnet of network_name (set by wiring.py)")
    host_ports = List(
        Integer(),
        [8081],
        config=True,
        help="the host ports containers reach on the gateway: the hub API's, the pipelines'",
    )

    @default("use_internal_ip")
    def _default_use_internal_ip(self):
        # False: the server's port is published, and the hub reaches it on host_ip.
        return False

    @default("host_ip")
    def _default_host_ip(self):
        # Published on the host's loopback only: the hub and proxy, never the network.
        return "127.0.0.1"

    # ---- start / stop -------------------------------------------------------

    async def start(self):
        self.resolve_default_profile()
        self.allocate_gpus(self.resolved.resources.gpus)
        try:
            settings = docker_server_settings(self.resolved, self._host_facts())
        except ImageNotBuilt as e:
            self._release()
            self.failure_reason = "image_missing"
            raise web.HTTPError(500, str(e)) from None
        self.image = settings.image
        if settings.cpu_limit is not None:
            self.cpu_limit = settings.cpu_limit
        if settings.mem_limit is not None:
            self.mem_limit = settings.mem_limit
        self.volumes = settings.volumes
        self.cmd = settings.cmd
        self.extra_host_config = settings.extra_host_config
        self.extra_create_kwargs = settings.extra_create_kwargs
        self._profile_env = settings.environment
        try:
            await asyncio.to_thread(
                ensure_container_network,
                self.client,
                self.prefix,
                self.network_subnet or None,
                tuple(self.host_ports),
            )
            await asyncio.to_thread(
                ensure_team_volumes,
                self.client,
                list(team_volumes(self.prefix, self.team_folders)),
                self.image,
            )
        except (NetworkError, TeamVolumeError) as e:
            self._release()
            raise web.HTTPError(500, str(e)) from None
        self.log.info("Starting %s with profile %s from %s", self._log_name, self.resolved.slug, self.image)
        try:
            return await super().start()
        except Exception:
            self._release()
            raise

    async def pull_image(self, image):
        """Never pull: say which command builds the missing image."""
        try:
            await self.docker("inspect_image", image)
        except docker.errors.NotFound:
            self.failure_reason = "image_missing"
            name = self.resolved.image if self.resolved else image
            raise web.HTTPError(
                500,
                f"The image {image} is not on this machine. Build it with: {build_command(name)}",
            ) from None

    async def poll(self):
        status = await super().poll()
        if status is not None:
            self._release()
        return status

    async def stop(self, now=False):
        await super().stop(now=now)
        self._release()

    def get_env(self):
        env = super().get_env()
        env.update(self._profile_env)
        return env

    # ---- helpers ------------------------------------------------------------

    def _host_facts(self) -> DockerHostFacts:
        images = image_references(self.image_tags_file, self.image_references)
        facts = self.catalog.images
        return DockerHostFacts(
            images=images,
            name_prefix=self.prefix,
            hadoop_conf_dir=self.hadoop_conf_dir or None,
            hadoop_images=hadoop_images(facts),
            gpu_ids=tuple(self.gpu_ids),
            teams=self.team_folders,
            kernel_names={name: kernel_display_name(name, facts) for name in facts},
        )

    def _release(self) -> None:
        self.release_gpus()
