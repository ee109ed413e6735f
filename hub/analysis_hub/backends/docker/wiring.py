"""The docker backend's wiring: a container per user server and per pipeline run (see `backends`).

Contract: `BACKEND` sets `CatalogDockerSpawner` and its traits (pure), warns
in `up` about catalog images that have no built tag, and gives the pipelines
service the `DockerExecutor`: runs execute in a container of the version's
image, never on the host.
"""

from __future__ import annotations

from ...runtime.gpus import machine_gpu_pool


class DockerBackend:
    name = "docker"

    def apply(self, settings, c, host) -> None:
        docker = settings.docker
        c.JupyterHub.spawner_class = "analysis_hub.backends.docker.spawner.CatalogDockerSpawner"
        spawner = c.CatalogDockerSpawner
        spawner.image_tags_file = str(docker.image_tags_file)
        spawner.image_references = dict(docker.images)
        spawner.hadoop_conf_dir = str(docker.hadoop_conf_dir or "")
        # Containers and home volumes carry this hub's name: two hubs on one
        # engine never adopt or remove each other's servers.
        spawner.prefix = settings.instance_name
        # A container per server, removed when it stops; the home is a named volume that stays.
        spawner.remove = True

    def preflight(self, settings, host) -> list[str]:
        from .spawner import missing_images
        from .translate import ImageNotBuilt

        try:
            missing = missing_images(settings)
        except ImageNotBuilt as e:  # an unreadable tags file: every spawn would fail the same way
            return [f"warning: {e}; rebuild it with `make images`"]
        return [
            f"warning: no {image} image is built; spawning its profiles fails until `make images`"
            for image in missing
        ]

    def executor(self, settings):
        from .executor import docker_executor

        return docker_executor(settings)

    def cluster(self, settings) -> None:
        return None

    def known_images(self, settings) -> None:
        return None  # the images built from images/ (local environments or docker tags)

    def machine_gpus(self, settings) -> int:
        return machine_gpu_pool(settings.gpu_state_file).total


BACKEND = DockerBackend()
