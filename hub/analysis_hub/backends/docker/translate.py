"""Profile -> DockerSpawner settings: a pure translation of the shared catalog.

Contract: `docker_server_settings(resolved, host)` returns the complete
`DockerServerSettings` for a resolved profile; the spawner assigns them to
DockerSpawner's traits and talks to the engine. Nothing here reads files or
calls Docker, so unit tests compare whole values.

What a user's container gets, and why:
- the image reference built for the profile's image (content-addressed tags
  from scripts/build_images.py, or an admin's override);
- `--cpus` / `--memory` from the profile's limits, with the guarantees as CPU
  shares and a memory reservation (what the engine protects under pressure);
- for GPU profiles, a device request for exactly the GPUs the hub allocated
  (never "all": two users must not share a GPU by accident), and
  NVIDIA_VISIBLE_DEVICES naming them, and a /dev/shm sized by the catalog's
  one rule (`Resources.shared_memory`); CPU profiles get "void", so a machine
  whose default runtime is NVIDIA's exposes no GPU to them either;
- a named volume per user at /home/jovyan, kept when the container is removed,
  so a culled and re-spawned server finds its files;
- host networking with the server bound to 127.0.0.1: reachable by the hub
  and proxy on this machine only, never from the network; Spark's driver
  and UI in pyspark containers likewise (a profile's env may override);
- uid 1000 (jovyan), no capabilities, no-new-privileges.
Node selectors and tolerations only mean something on Kubernetes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...catalog import ResolvedProfile

HOME = "/home/jovyan"
HADOOP_CONF_DIR = "/etc/hadoop/conf"
JOVYAN = "1000:100"
CPU_SHARES_PER_CORE = 1024  # Docker's weight for one core's worth of CPU time
# Read by images/pyspark's start hook (driver address) and by Spark (SPARK_LOCAL_IP: UI, block manager).
LOOPBACK_SPARK_ENV = ("SPARK_DRIVER_HOST", "SPARK_DRIVER_BIND_ADDRESS", "SPARK_LOCAL_IP")


@dataclass(frozen=True)
class DockerHostFacts:
    """What the machine and settings provide; passed in to keep the translation pure."""

    images: dict[str, str]  # catalog image name -> local image reference
    name_prefix: str  # containers and volumes of this hub: <prefix>-...
    hadoop_conf_dir: str | None = None  # host folder mounted read-only for Hadoop clients
    hadoop_images: frozenset[str] = frozenset()  # images that are Hadoop clients (images.py)
    gpu_ids: tuple[str, ...] = field(default_factory=tuple)  # GPUs the hub allocated to this server


@dataclass(frozen=True)
class DockerServerSettings:
    """DockerSpawner traits for one server."""

    image: str
    cpu_limit: float | None
    mem_limit: int | None
    environment: dict[str, str]
    volumes: dict[str, dict[str, str]]
    extra_host_config: dict
    extra_create_kwargs: dict


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


def docker_server_settings(resolved: ResolvedProfile, host: DockerHostFacts) -> DockerServerSettings:
    r = resolved.resources
    env = dict(resolved.env)
    host_config: dict = {
        # The server listens on loopback of the host's network: reachable by
        # the hub and the proxy, not from the network (see DockerSpawner ip).
        "network_mode": "host",
        "security_opt": ["no-new-privileges"],
        "cap_drop": ["ALL"],
    }
    if r.cpu_guarantee:
        host_config["cpu_shares"] = max(2, int(r.cpu_guarantee * CPU_SHARES_PER_CORE))
    if r.memory_guarantee:
        host_config["mem_reservation"] = r.memory_guarantee
    if r.gpus:
        gpu_ids = list(host.gpu_ids)
        if len(gpu_ids) != r.gpus:
            raise ValueError(f"profile {resolved.slug!r} needs {r.gpus} GPUs; {len(gpu_ids)} allocated")
        host_config["device_requests"] = [{"device_ids": gpu_ids, "capabilities": [["gpu"]]}]
        env["NVIDIA_VISIBLE_DEVICES"] = ",".join(gpu_ids)
        host_config["shm_size"] = r.shared_memory
    else:
        env["NVIDIA_VISIBLE_DEVICES"] = "void"
        env["CUDA_VISIBLE_DEVICES"] = ""
    volumes = {home_volume_name(host.name_prefix): {"bind": HOME, "mode": "rw"}}
    if resolved.image in host.hadoop_images:
        # Containers share the host's network: Spark's driver ports and its UI
        # (no authentication) must not listen beyond loopback, and its ports
        # are picked free (the image's start hook), since users share the host.
        for key in LOOPBACK_SPARK_ENV:
            env.setdefault(key, "127.0.0.1")
        if host.hadoop_conf_dir:
            volumes[host.hadoop_conf_dir] = {"bind": HADOOP_CONF_DIR, "mode": "ro"}
            env["HADOOP_CONF_DIR"] = HADOOP_CONF_DIR
    env["ANALYSIS_HUB_PROFILE"] = resolved.slug
    return DockerServerSettings(
        image=image_reference(resolved.image, host.images),
        cpu_limit=r.cpu_limit,
        mem_limit=r.memory_limit,
        environment=env,
        volumes=volumes,
        extra_host_config=host_config,
        extra_create_kwargs={"user": JOVYAN, "working_dir": HOME},
    )
