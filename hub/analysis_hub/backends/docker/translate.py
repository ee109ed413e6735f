"""Profiles and pipeline runs -> container settings for the docker backend: pure translations.

Contract: `docker_server_settings(resolved, host)` returns the complete
`DockerServerSettings` for a user's server (the spawner assigns them to
DockerSpawner's traits), `docker_run_settings(spec, host, ...)` the complete
`DockerRunSettings` for a pipeline run's container (the executor creates it),
and `container_network` / `network_create_arguments` / `host_firewall` the
network every container of a hub joins and the host's rules around it. Both
kinds of container follow the same rules (`sandbox_host_config`,
`hadoop_mounts`), written once here. Nothing here reads files or calls Docker,
so unit tests compare whole values.

What a container gets, and why:
- the image reference built for the catalog image (content-addressed tags
  from scripts/build_images.py, or an admin's override);
- `--cpus` / `--memory` from the limits, with the guarantees as CPU shares and
  a memory reservation (what the engine protects under pressure);
- for GPUs, a device request for exactly the GPUs allocated (never "all": two
  users must not share a GPU by accident), NVIDIA_VISIBLE_DEVICES naming them
  and a /dev/shm sized by the catalog's one rule (`Resources.shared_memory`);
  without GPUs "void", so a machine whose default runtime is NVIDIA's exposes
  none;
- the team folders it may see (`team_volumes.py`): a server its user's
  teams', a pipeline run its team's, each a named volume at
  /home/jovyan/teams/<team> (`ro` where the team is read-only);
- a server's command wrapped so its kernel is named after the image
  (`kernels.container_command`; no image is rebuilt for it);
- uid 1000 (jovyan), no capabilities, no-new-privileges;
- the hub's one container network (below), never the host's.

The network: one bridge per hub (`<prefix>-net`), with inter-container
traffic off (`enable_icc=false`), rather than a network per user. Both keep
containers apart (a container reaches neither another's ports nor its
published ones, which listen on the host's 127.0.0.1 only); one bridge has
one gateway address for the hub API to listen on and one set of host rules,
where a network per user would need the hub to listen on every gateway, and
Docker's default address pools run out after about thirty networks.
cap_drop ALL takes NET_RAW, so nobody can forge traffic on the shared bridge.
Containers on a bridge can't reach the host's 127.0.0.1, but they can reach
every other address of the host; `host_firewall` lets them reach the hub
API's port on the gateway and nothing else on the host (replies to
connections the host opened, such as the hub's to a server, pass).

A server's port is published on the host's 127.0.0.1 only (the spawner's
port mapping): the hub and proxy reach it there, nothing else does. Spark's
driver, block manager and UI bind the container's own loopback, not the
host's: local-mode Spark needs nothing more, and nothing of it is published.
Node selectors and tolerations only mean something on Kubernetes.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from ...catalog import ResolvedProfile, Resources
from ...images import HADOOP_CONF_DIR, HOME, JOVYAN_GID, JOVYAN_UID, RUN_DIR, RUN_FOLDER
from ...kernels import container_command, container_kernel_env
from ...pipelines.engine.executor import papermill_arguments
from ...pipelines.publishing.specs import RUN_FOLDER_ENV, RunSpec
from ...teams import TeamFolder
from .team_volumes import run_folders, team_volumes

JOVYAN = f"{JOVYAN_UID}:{JOVYAN_GID}"  # the containers' user
CPU_SHARES_PER_CORE = 1024  # Docker's weight for one core's worth of CPU time
CPU_PERIOD = 100_000  # microseconds; DockerSpawner's default period, so runs and servers match
# Read by images/pyspark's start hook (driver address) and by Spark (SPARK_LOCAL_IP: UI, block manager).
LOOPBACK_SPARK_ENV = ("SPARK_DRIVER_HOST", "SPARK_DRIVER_BIND_ADDRESS", "SPARK_LOCAL_IP")
REJECT = ["-j", "REJECT", "--reject-with", "icmp-port-unreachable"]


@dataclass(frozen=True)
class DockerHostFacts:
    """What the machine and settings provide; passed in to keep the translation pure."""

    images: dict[str, str]  # catalog image name -> local image reference
    name_prefix: str  # containers, volumes and the network of this hub: <prefix>-...
    hadoop_conf_dir: str | None = None  # host folder mounted read-only for Hadoop clients
    hadoop_images: frozenset[str] = frozenset()  # images that are Hadoop clients (images.py)
    gpu_ids: tuple[str, ...] = field(default_factory=tuple)  # GPUs the hub allocated to this server
    # The team folders this container sees: a server its user's teams', a run its team's.
    teams: tuple[TeamFolder, ...] = ()
    kernel_names: dict[str, str] = field(default_factory=dict)  # image -> its kernel's display name


@dataclass(frozen=True)
class DockerServerSettings:
    """DockerSpawner traits for one server."""

    image: str
    cpu_limit: float | None
    mem_limit: int | None
    environment: dict[str, str]
    volumes: dict[str, dict[str, str]]
    cmd: list[str]
    extra_host_config: dict
    extra_create_kwargs: dict


@dataclass(frozen=True)
class DockerRunSettings:
    """docker-py `create_container` arguments for one pipeline run (host_config unbuilt)."""

    name: str
    image: str
    command: list[str]
    environment: dict[str, str]
    host_config: dict  # for APIClient.create_host_config
    create_kwargs: dict  # user, working_dir, labels


@dataclass(frozen=True)
class ContainerNetwork:
    """The bridge network every container of one hub joins."""

    name: str  # Docker's name for it
    bridge: str  # the host's interface (Linux allows 15 characters)
    chain: str  # the iptables chain holding the host's rules for it
    subnet: str | None  # CIDR; None until Docker picked one (or the admin set it)

    @property
    def gateway(self) -> str:
        """The host's address on the bridge: where the hub API listens for containers."""
        if not self.subnet:
            raise ValueError(f"the subnet of the docker network {self.name} is not known yet")
        return gateway_address(self.subnet)


@dataclass(frozen=True)
class HostFirewall:
    """iptables rules, in `iptables -S` form: hooks in INPUT, and the chain they jump to."""

    chain: str
    hooks: list[list[str]]  # INPUT rules, each without its leading "-A INPUT"
    rules: list[list[str]]  # the chain's rules, in order, each without "-A <chain>"


class ImageNotBuilt(LookupError):
    """No local image for a catalog image; the message names the build command."""


def build_command(image: str) -> str:
    return f"python scripts/build_images.py {image}   (or: make images)"


def image_reference(image: str, images: dict[str, str]) -> str:
    try:
        return images[image]
    except KeyError:
        raise ImageNotBuilt(
            f"The {image!r} image has not been built on this machine. Build it with: {build_command(image)}"
        ) from None


def home_volume_name(name_prefix: str) -> str:
    """DockerSpawner fills in {username} (escaped, always a valid volume name)."""
    return f"{name_prefix}-home-{{username}}"


# ---- the network ------------------------------------------------------------


def gateway_address(subnet: str) -> str:
    """The first address of the subnet: Docker's default gateway, and the one we ask for."""
    return str(ipaddress.ip_network(subnet)[1])


def container_network(name_prefix: str, subnet: str | None = None) -> ContainerNetwork:
    # The prefix is "analysis-hub-<8 hex>" (Settings.instance_name): its hash
    # names the bridge within Linux's 15 characters; the chain takes the prefix.
    suffix = name_prefix.rsplit("-", 1)[-1][:12]
    return ContainerNetwork(
        name=f"{name_prefix}-net", bridge=f"ah-{suffix}", chain=name_prefix, subnet=subnet
    )


def network_create_arguments(network: ContainerNetwork) -> dict:
    """APIClient.create_network's keyword arguments."""
    arguments = {
        "name": network.name,
        "driver": "bridge",
        "options": {
            # Containers on this bridge can't talk to each other.
            "com.docker.network.bridge.enable_icc": "false",
            "com.docker.network.bridge.name": network.bridge,
        },
        "labels": {"analysis-hub": network.chain},
        "check_duplicate": True,
    }
    if network.subnet:
        arguments["ipam"] = {
            "Driver": "default",
            "Config": [{"Subnet": network.subnet, "Gateway": network.gateway}],
        }
    return arguments


def host_firewall(network: ContainerNetwork, ports: tuple[int, ...]) -> HostFirewall:
    """What containers may reach on the host: the given ports on the gateway (the hub API's, and
    the pipelines service's for the servers' publishing), nothing else.

    Traffic from the bridge to any host address goes to the chain; so does
    traffic to the gateway from anywhere but the host itself (a neighbour
    routing to it through this machine). The host's own connections to the
    gateway (the proxy and services calling the hub) arrive on `lo`.
    """
    gateway = f"{network.gateway}/32"
    return HostFirewall(
        chain=network.chain,
        hooks=[
            ["-i", network.bridge, "-j", network.chain],
            ["-d", gateway, "!", "-i", "lo", "-j", network.chain],
        ],
        rules=[
            ["!", "-i", network.bridge, *REJECT],
            ["-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"],
            *(
                ["-d", gateway, "-p", "tcp", "-m", "tcp", "--dport", str(port), "-j", "ACCEPT"]
                for port in ports
            ),
            REJECT,
        ],
    )


def host_ports(settings) -> tuple[int, ...]:
    """The host ports containers reach on the gateway: the hub API, and the pipelines service
    (servers publish to it; it still checks every caller's hub token)."""
    pipelines = settings.pipelines
    return (settings.hub.internal_port, *((pipelines.port,) if pipelines.enabled else ()))


# ---- what every container shares -------------------------------------------


def sandbox_host_config(
    resources: Resources, gpu_ids: tuple[str, ...], name_prefix: str
) -> tuple[dict, dict]:
    """Host config and environment every container gets: network, privileges, shares, GPUs."""
    host_config: dict = {
        "network_mode": container_network(name_prefix).name,
        "security_opt": ["no-new-privileges"],
        "cap_drop": ["ALL"],
    }
    env: dict[str, str] = {}
    if resources.cpu_guarantee:
        host_config["cpu_shares"] = max(2, int(resources.cpu_guarantee * CPU_SHARES_PER_CORE))
    if resources.memory_guarantee:
        host_config["mem_reservation"] = resources.memory_guarantee
    if resources.gpus:
        if len(gpu_ids) != resources.gpus:
            raise ValueError(f"needs {resources.gpus} GPUs; {len(gpu_ids)} allocated")
        host_config["device_requests"] = [{"device_ids": list(gpu_ids), "capabilities": [["gpu"]]}]
        env["NVIDIA_VISIBLE_DEVICES"] = ",".join(gpu_ids)
        host_config["shm_size"] = resources.shared_memory
    else:
        env["NVIDIA_VISIBLE_DEVICES"] = "void"
        env["CUDA_VISIBLE_DEVICES"] = ""
    return host_config, env


def hadoop_mounts(image: str, host: DockerHostFacts) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Volumes and environment for Hadoop clients (Spark images only)."""
    if image not in host.hadoop_images:
        return {}, {}
    # The container's own loopback (its own network namespace): Spark's ports
    # and UI (no authentication) stay inside the container; ports are picked
    # free by Spark. A profile's env may open them (a cluster's executors).
    env = dict.fromkeys(LOOPBACK_SPARK_ENV, "127.0.0.1")
    if not host.hadoop_conf_dir:
        return {}, env
    env["HADOOP_CONF_DIR"] = HADOOP_CONF_DIR
    return {host.hadoop_conf_dir: {"bind": HADOOP_CONF_DIR, "mode": "ro"}}, env


# ---- a user's server --------------------------------------------------------


def docker_server_settings(resolved: ResolvedProfile, host: DockerHostFacts) -> DockerServerSettings:
    r = resolved.resources
    try:
        host_config, sandbox_env = sandbox_host_config(r, host.gpu_ids, host.name_prefix)
    except ValueError as e:
        raise ValueError(f"profile {resolved.slug!r} {e}") from None
    hadoop_volumes, hadoop_env = hadoop_mounts(resolved.image, host)
    # ANALYSIS_HUB_PROFILE: every backend's spawner adds it (`catalog_spawner.PROFILE_ENV`).
    env = {**hadoop_env, **resolved.env, **sandbox_env}
    env.update(container_kernel_env(host.kernel_names.get(resolved.image, resolved.image)))
    return DockerServerSettings(
        image=image_reference(resolved.image, host.images),
        cpu_limit=r.cpu_limit,
        mem_limit=r.memory_limit,
        environment=env,
        volumes={
            home_volume_name(host.name_prefix): {"bind": HOME, "mode": "rw"},
            **hadoop_volumes,
            **team_volumes(host.name_prefix, host.teams),
        },
        cmd=container_command(),
        extra_host_config=host_config,
        extra_create_kwargs={"user": JOVYAN, "working_dir": HOME},
    )


# ---- a pipeline run ---------------------------------------------------------


def docker_run_settings(spec: RunSpec, host: DockerHostFacts, run_folder: str) -> DockerRunSettings:
    """A run's container: papermill in the version's image, limits and GPUs (`host.gpu_ids`),
    the host's `run_folder` mounted read-write at RUN_DIR, removed by the executor afterwards."""
    resources = spec.profile.resources
    try:
        host_config, sandbox_env = sandbox_host_config(resources, host.gpu_ids, host.name_prefix)
    except ValueError as e:
        raise ValueError(f"run {spec.run_id} of {spec.team}/{spec.pipeline} {e}") from None
    hadoop_volumes, hadoop_env = hadoop_mounts(spec.image, host)
    if resources.memory_limit:
        host_config["mem_limit"] = resources.memory_limit
    if resources.cpu_limit:
        host_config["cpu_period"] = CPU_PERIOD
        host_config["cpu_quota"] = int(resources.cpu_limit * CPU_PERIOD)
    host_config["binds"] = {
        run_folder: {"bind": RUN_DIR, "mode": "rw"},
        **hadoop_volumes,
        # HOME is /home/jovyan (the image's user): ~/teams/<team> is where the team's servers have it.
        **team_volumes(host.name_prefix, run_folders(host.teams, spec.team)),
    }
    env = {**hadoop_env, **spec.env, **sandbox_env, "PYTHONUNBUFFERED": "1"}
    if spec.run_folder is not None:  # a workflow's step: the run's shared folder, same path in each
        host_config["binds"][str(spec.run_folder)] = {"bind": RUN_FOLDER, "mode": "rw"}
        env[RUN_FOLDER_ENV] = RUN_FOLDER
    step = f"-{spec.step.replace('_', '-')}" if spec.step else ""
    return DockerRunSettings(
        name=f"{host.name_prefix}-run-{spec.run_id}{step}",
        image=image_reference(spec.image, host.images),
        command=["python", *papermill_arguments(spec.kernel)],
        environment=env,
        host_config=host_config,
        create_kwargs={
            "user": JOVYAN,
            "working_dir": RUN_DIR,
            "labels": {
                "analysis-hub": host.name_prefix,
                "analysis-hub.run": str(spec.run_id),
                "analysis-hub.team": spec.team,
                "analysis-hub.pipeline": spec.pipeline,
                **({"analysis-hub.step": spec.step} if spec.step else {}),
            },
        },
    )
