"""The docker backend's wiring: a container per user server and per pipeline run (see `backends`).

Contract: `BACKEND` sets `CatalogDockerSpawner` and its traits (pure), the
hub's container network and the hub API on its gateway (`apply_networking`;
the network's subnet is found at start by `network.prepare_network`), warns
in `up` about catalog images that have no built tag, and gives the pipelines
service the `DockerExecutor`: runs execute in a container of the version's
image, never on the host.
"""

from __future__ import annotations

from .. import OneMachine


class DockerBackend(OneMachine):
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
        apply_networking(settings, c)

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

    def start_timeout(self, settings) -> int:
        return settings.docker.start_timeout

    def prepare(self, settings):
        # The containers' network and the host's rules; the hub API listens on its gateway.
        from .network import prepare_network

        return prepare_network(settings)

    def pipelines_url(self, settings, prefix) -> str:
        # The service itself on the bridge's gateway: the containers' firewall opens it there
        # (`translate.host_ports`), while the proxy stays on the host's loopback.
        gateway = self.service_addresses(settings)
        return f"http://{gateway[0]}:{settings.pipelines.port}{prefix}" if gateway else ""

    def service_addresses(self, settings) -> list[str]:
        from .translate import gateway_address

        subnet = settings.docker.network_subnet
        return [gateway_address(subnet)] if subnet else []

    def executor(self, settings):
        from .executor import docker_executor

        return docker_executor(settings)


def apply_networking(settings, c) -> None:
    """Containers on the hub's own bridge (translate.py says why), the hub API on its gateway."""
    from ...settings import SettingsError
    from .translate import container_network, host_ports

    subnet = settings.docker.network_subnet
    if not subnet:
        # startup.prepare fills it in (creating the network) before the hub is configured.
        raise SettingsError(
            "docker", ["docker.network_subnet: not known; start the hub with `analysis-hub up`"]
        )
    network = container_network(settings.instance_name, subnet)
    spawner = c.CatalogDockerSpawner
    spawner.network_name = network.name
    spawner.network_subnet = subnet
    spawner.host_ports = list(host_ports(settings))
    # Containers can't reach the host's 127.0.0.1: the hub API listens on the
    # bridge's gateway, the one host address the containers' rules let through.
    c.JupyterHub.hub_bind_url = f"http://{network.gateway}:{settings.hub.internal_port}"


BACKEND = DockerBackend()
