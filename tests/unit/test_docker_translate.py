"""The docker backend's pure translations (servers, pipeline runs, the network and the host's rules)
and its config, compared as whole values."""

from __future__ import annotations

import json
import sys
import textwrap
from dataclasses import asdict, replace

import pytest
from analysis_hub.backends.docker.spawner import CatalogDockerSpawner, read_image_tags
from analysis_hub.backends.docker.translate import (
    ContainerNetwork,
    DockerHostFacts,
    HostFirewall,
    ImageNotBuilt,
    container_network,
    docker_run_settings,
    docker_server_settings,
    host_firewall,
    network_create_arguments,
)
from analysis_hub.catalog import resolve
from analysis_hub.config import HostFacts, apply_settings
from analysis_hub.images import discover_images, hadoop_images
from analysis_hub.kernels import container_command
from analysis_hub.pipelines.publishing.specs import RunSpec
from analysis_hub.settings import SettingsError, load_settings
from analysis_hub.teams import TeamFolder
from traitlets.config import Config
from unit_support import IMAGES as IMAGES_FOLDER
from unit_support import run_profile

GiB = 2**30
IMAGES = {
    "pyspark": "analysis-hub/pyspark:0123456789ab",
    "pytorch": "analysis-hub/pytorch:0123456789ab",
    "tensorflow": "analysis-hub/tensorflow:0123456789ab",
}
# What images/*/image.yaml declares: pyspark is the Hadoop client.
HADOOP_IMAGES = hadoop_images(discover_images(IMAGES_FOLDER))
KERNEL_NAMES = {name: facts.display_name for name, facts in discover_images(IMAGES_FOLDER).items()}
HOST = DockerHostFacts(
    images=IMAGES, name_prefix="analysis-hub-1a2b3c4d", hadoop_images=HADOOP_IMAGES, kernel_names=KERNEL_NAMES
)
TEAMS = (TeamFolder("data-team"), TeamFolder("gpu-team", read_only=True))
NETWORK = "analysis-hub-1a2b3c4d-net"
SECURE = {"network_mode": NETWORK, "security_opt": ["no-new-privileges"], "cap_drop": ["ALL"]}
JOVYAN = {"user": "1000:100", "working_dir": "/home/jovyan"}
HOME = {"analysis-hub-1a2b3c4d-home-{username}": {"bind": "/home/jovyan", "mode": "rw"}}


def test_pyspark_default(repo_catalog):
    """pyspark: its image, --cpus 2 --memory 4g with guarantees as shares and a reservation, no GPUs,
    the home volume, the profile env, as uid 1000 without privileges on the hub's container network."""
    settings = docker_server_settings(resolve(repo_catalog.get("pyspark")), HOST)
    assert asdict(settings) == {
        "image": IMAGES["pyspark"],
        "cpu_limit": 2.0,
        "mem_limit": 4 * GiB,
        "environment": {
            "HADOOP_CONF_DIR": "/etc/hadoop/conf",
            "PYSPARK_SUBMIT_ARGS": "--driver-memory 2g pyspark-shell",
            "SPARK_DRIVER_HOST": "127.0.0.1",
            "SPARK_DRIVER_BIND_ADDRESS": "127.0.0.1",
            "SPARK_LOCAL_IP": "127.0.0.1",
            "NVIDIA_VISIBLE_DEVICES": "void",
            "CUDA_VISIBLE_DEVICES": "",
            # The kernel is named after the image (images/pyspark/image.yaml), with no rebuild.
            "ANALYSIS_HUB_KERNEL_DISPLAY_NAME": "PySpark (Spark 4, Java 17)",
            "JUPYTER_PATH": "/tmp/analysis-hub-jupyter",
        },
        "volumes": HOME,
        "cmd": container_command(),
        "extra_host_config": {**SECURE, "cpu_shares": 1024, "mem_reservation": 2 * GiB},
        "extra_create_kwargs": JOVYAN,
    }


def test_pytorch_gpu_gets_exactly_its_allocated_gpus(repo_catalog):
    """A GPU profile asks the engine for the GPUs the hub allocated, by id, never 'all'."""
    host = replace(HOST, gpu_ids=("1", "3"))
    settings = docker_server_settings(resolve(repo_catalog.get("pytorch"), {"accelerator": "gpu2"}), host)
    assert settings.extra_host_config == {
        **SECURE,
        "cpu_shares": 4096,
        "mem_reservation": 16 * GiB,
        "device_requests": [{"device_ids": ["1", "3"], "capabilities": [["gpu"]]}],
        "shm_size": 16 * GiB,
    }
    assert settings.environment == {
        "NVIDIA_DRIVER_CAPABILITIES": "compute,utility",
        "NVIDIA_VISIBLE_DEVICES": "1,3",
        "ANALYSIS_HUB_KERNEL_DISPLAY_NAME": "PyTorch (CUDA)",
        "JUPYTER_PATH": "/tmp/analysis-hub-jupyter",
    }
    assert (settings.cpu_limit, settings.mem_limit) == (8.0, 32 * GiB)


def test_team_volumes_are_mounted_for_the_users_teams_only(repo_catalog):
    """Each team folder the user's groups give is the team's named volume (this hub's prefix) at
    ~/teams/<team>, read-only where flagged; no other team's volume is mounted."""
    settings = docker_server_settings(resolve(repo_catalog.get("tensorflow")), replace(HOST, teams=TEAMS))
    assert settings.volumes == {
        **HOME,
        "analysis-hub-1a2b3c4d-team-data-team": {"bind": "/home/jovyan/teams/data-team", "mode": "rw"},
        "analysis-hub-1a2b3c4d-team-gpu-team": {"bind": "/home/jovyan/teams/gpu-team", "mode": "ro"},
    }
    assert docker_server_settings(resolve(repo_catalog.get("tensorflow")), HOST).volumes == HOME


def test_a_teams_run_mounts_its_teams_volume_only_where_servers_have_it():
    """A data-team run gets data-team's volume at /home/jovyan/teams/data-team (HOME is jovyan's),
    nothing of gpu-team; a run of a team without a folder gets none."""
    host = replace(HOST, teams=TEAMS)
    binds = docker_run_settings(run(), host, "/runs/7/work").host_config["binds"]
    assert binds == {
        "/runs/7/work": {"bind": "/home/jovyan/run", "mode": "rw"},
        "analysis-hub-1a2b3c4d-team-data-team": {"bind": "/home/jovyan/teams/data-team", "mode": "rw"},
    }
    other = docker_run_settings(run(team="ml-team"), host, "/runs/7/work").host_config["binds"]
    assert other == {"/runs/7/work": {"bind": "/home/jovyan/run", "mode": "rw"}}


def test_pytorch_cpu_option_sees_no_gpu(repo_catalog):
    settings = docker_server_settings(resolve(repo_catalog.get("pytorch"), {"accelerator": "cpu"}), HOST)
    assert "device_requests" not in settings.extra_host_config
    assert "shm_size" not in settings.extra_host_config, "CPU servers keep the engine's /dev/shm"
    assert settings.environment["NVIDIA_VISIBLE_DEVICES"] == "void"
    assert settings.environment["CUDA_VISIBLE_DEVICES"] == ""


def test_gpu_profile_without_allocation_is_refused(repo_catalog):
    with pytest.raises(ValueError, match="needs 1 GPUs; 0 allocated"):
        docker_server_settings(resolve(repo_catalog.get("pytorch")), HOST)


def test_hadoop_conf_dir_is_mounted_read_only_for_pyspark_only(repo_catalog):
    host = replace(HOST, hadoop_conf_dir="/srv/hadoop")
    pyspark = docker_server_settings(resolve(repo_catalog.get("pyspark")), host)
    tensorflow = docker_server_settings(resolve(repo_catalog.get("tensorflow")), host)
    assert pyspark.volumes == {**HOME, "/srv/hadoop": {"bind": "/etc/hadoop/conf", "mode": "ro"}}
    assert tensorflow.volumes == HOME


def test_spark_stays_on_the_containers_loopback_unless_the_profile_says_otherwise(repo_catalog):
    """Spark's driver and UI listen on the container's own loopback (nothing of them is published);
    a profile's env (a cluster's executors must reach the driver) wins; images without Spark get
    none of it."""
    resolved = resolve(repo_catalog.get("pyspark"))
    opened = replace(resolved, env={**resolved.env, "SPARK_DRIVER_BIND_ADDRESS": "0.0.0.0"})
    env = docker_server_settings(opened, HOST).environment
    assert (env["SPARK_DRIVER_BIND_ADDRESS"], env["SPARK_DRIVER_HOST"]) == ("0.0.0.0", "127.0.0.1")
    tensorflow = docker_server_settings(resolve(repo_catalog.get("tensorflow")), HOST).environment
    assert not {key for key in tensorflow if key.startswith("SPARK_")}


def test_missing_image_names_the_build_command(repo_catalog):
    with pytest.raises(ImageNotBuilt, match=r"python scripts/build_images.py tensorflow"):
        docker_server_settings(resolve(repo_catalog.get("tensorflow")), DockerHostFacts({}, "x"))


def test_tags_file(tmp_path):
    assert read_image_tags(str(tmp_path / "missing.json")) == {}
    (tmp_path / "tags.json").write_text(json.dumps(IMAGES))
    assert read_image_tags(str(tmp_path / "tags.json")) == IMAGES
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ImageNotBuilt, match="cannot read the image tags file"):
        read_image_tags(str(tmp_path / "bad.json"))


def load(tmp_path, text: str):
    path = tmp_path / "settings.yaml"
    path.write_text(textwrap.dedent(text))
    return load_settings(path, environ={})


def configure(tmp_path, text: str) -> tuple[Config, object]:
    settings = load(tmp_path, text)
    return apply_settings(settings, Config(), HostFacts(is_root=False, cgroups_writable=False)), settings


def test_docker_backend_config(tmp_path):
    """backend: docker selects CatalogDockerSpawner with the catalog, tags file (relative to the
    settings file), per-hub names, removed containers, the culler's activity interval, and the
    hub's container network, with the hub API on its gateway."""
    c, settings = configure(
        tmp_path,
        """\
        backend: docker
        culler: {every: 30}
        docker: {images: {pyspark: mine/pyspark:1}, hadoop_conf_dir: hadoop, network_subnet: 10.200.0.0/24}
        hub: {internal_port: 8181}
        """,
    )
    assert c.JupyterHub.spawner_class == "analysis_hub.backends.docker.spawner.CatalogDockerSpawner"
    spawner = c.CatalogDockerSpawner
    assert spawner.image_tags_file == str(tmp_path / "build" / "image-tags.json")
    assert spawner.image_references == {"pyspark": "mine/pyspark:1"}
    assert spawner.hadoop_conf_dir == str(tmp_path / "hadoop")
    assert spawner.prefix == settings.instance_name
    assert spawner.remove is True
    assert c.CatalogSpawnerMixin.activity_interval == 30
    assert c.CatalogSpawnerMixin.catalog_dir == str(tmp_path / "profiles")
    assert c.CatalogSpawnerMixin.start_timeout == settings.docker.start_timeout
    # The containers reach the hub API and the pipelines service (servers publish to it).
    assert (spawner.network_name, spawner.network_subnet, spawner.host_ports) == (
        f"{settings.instance_name}-net",
        "10.200.0.0/24",
        [8181, settings.pipelines.port],
    )
    assert (
        c.CatalogSpawnerMixin.pipelines_url
        == f"http://10.200.0.1:{settings.pipelines.port}/services/pipelines/"
    )
    # The hub API listens on the network's gateway: the one host address containers reach.
    assert c.JupyterHub.hub_bind_url == "http://10.200.0.1:8181"
    configurable = set(CatalogDockerSpawner.class_trait_names(config=True))
    assert set(spawner) | set(c.CatalogSpawnerMixin) <= configurable, sorted(set(spawner) - configurable)


def test_unknown_docker_key_is_refused(tmp_path):
    with pytest.raises(SettingsError, match=r"docker\.image_tag"):
        configure(tmp_path, "backend: docker\ndocker: {image_tag: x}\n")


def test_up_warns_about_images_not_built(tmp_path):
    """`up` with backend docker names each catalog image without a built tag, and nothing else."""
    from analysis_hub.cli import preflight
    from unit_support import IMAGES as IMAGES_DIR
    from unit_support import PROFILES

    (tmp_path / "tags.json").write_text(json.dumps({"pyspark": IMAGES["pyspark"]}))
    settings = load(
        tmp_path,
        f"""\
        backend: docker
        catalog: {PROFILES}
        images_dir: {IMAGES_DIR}
        docker: {{image_tags_file: tags.json, images: {{tensorflow: mine/tf:1}}}}
        hub: {{proxy_command: [{sys.executable}]}}
        """,
    )
    problems = preflight(settings, HostFacts(is_root=False, cgroups_writable=False))
    assert problems == ["warning: no pytorch image is built; spawning its profiles fails until `make images`"]


def test_spawner_defaults_publish_the_server_port_on_host_loopback_only():
    """The server listens in its container's own network namespace; its port is published on the
    host's 127.0.0.1 only, where the hub and proxy reach it (a port mapping, not the internal IP)."""
    spawner = CatalogDockerSpawner()
    assert (spawner.ip, spawner.port, spawner.host_ip, spawner.use_internal_ip) == (
        "0.0.0.0",
        8888,
        "127.0.0.1",
        False,
    )


def test_up_warns_about_an_unreadable_tags_file(tmp_path):
    """A broken tags file is one clear warning from `up`, not a traceback."""
    from analysis_hub.cli import preflight
    from unit_support import IMAGES as IMAGES_DIR
    from unit_support import PROFILES

    (tmp_path / "tags.json").write_text("{")
    settings = load(
        tmp_path,
        f"""\
        backend: docker
        catalog: {PROFILES}
        images_dir: {IMAGES_DIR}
        docker: {{image_tags_file: tags.json}}
        hub: {{proxy_command: [{sys.executable}]}}
        """,
    )
    [problem] = preflight(settings, HostFacts(is_root=False, cgroups_writable=False))
    assert problem.startswith(f"warning: cannot read the image tags file {tmp_path / 'tags.json'}")
    assert problem.endswith("rebuild it with `make images`")


def test_docker_backend_config_needs_the_network_subnet(tmp_path):
    """Without the subnet (found by `analysis-hub up`, or set) the hub can't know where to listen
    for containers: a clear error naming the key, not a hub that containers can't reach."""
    with pytest.raises(SettingsError, match=r"docker\.network_subnet: not known"):
        configure(tmp_path, "backend: docker\n")


def test_a_network_subnet_that_is_not_one_is_refused(tmp_path):
    with pytest.raises(
        SettingsError, match=r"docker\.network_subnet.*'10\.0\.0\.300/24' is not an IPv4 subnet"
    ):
        load(tmp_path, "backend: docker\ndocker: {network_subnet: 10.0.0.300/24}\n")


def test_the_hubs_container_network():
    """One bridge per hub, named after it (the bridge within Linux's 15 characters), inter-container
    traffic off; a pinned subnet is created with its first address as the gateway."""
    network = container_network("analysis-hub-1a2b3c4d", "10.200.0.0/24")
    assert network == ContainerNetwork(
        name=NETWORK, bridge="ah-1a2b3c4d", chain="analysis-hub-1a2b3c4d", subnet="10.200.0.0/24"
    )
    assert network.gateway == "10.200.0.1"
    options = {
        "com.docker.network.bridge.enable_icc": "false",
        "com.docker.network.bridge.name": "ah-1a2b3c4d",
    }
    assert network_create_arguments(network) == {
        "name": NETWORK,
        "driver": "bridge",
        "options": options,
        "labels": {"analysis-hub": "analysis-hub-1a2b3c4d"},
        "check_duplicate": True,
        "ipam": {"Driver": "default", "Config": [{"Subnet": "10.200.0.0/24", "Gateway": "10.200.0.1"}]},
    }
    unpinned = container_network("analysis-hub-1a2b3c4d")
    assert network_create_arguments(unpinned) == {
        "name": NETWORK,
        "driver": "bridge",
        "options": options,
        "labels": {"analysis-hub": "analysis-hub-1a2b3c4d"},
        "check_duplicate": True,
    }
    with pytest.raises(
        ValueError, match="subnet of the docker network analysis-hub-1a2b3c4d-net is not known"
    ):
        _ = unpinned.gateway


def test_host_firewall_lets_containers_reach_the_hub_api_and_pipelines_ports_only():
    """Everything from the bridge to the host, and anything but the host itself to the gateway,
    goes to the hub's chain: replies pass, the hub API's and the pipelines service's ports on the
    gateway pass, the rest is refused. In `iptables -S` form, so the rules can be compared with
    what is installed."""
    firewall = host_firewall(container_network("analysis-hub-1a2b3c4d", "10.200.0.0/24"), (8181, 9102))
    reject = ["-j", "REJECT", "--reject-with", "icmp-port-unreachable"]
    assert firewall == HostFirewall(
        chain="analysis-hub-1a2b3c4d",
        hooks=[
            ["-i", "ah-1a2b3c4d", "-j", "analysis-hub-1a2b3c4d"],
            ["-d", "10.200.0.1/32", "!", "-i", "lo", "-j", "analysis-hub-1a2b3c4d"],
        ],
        rules=[
            ["!", "-i", "ah-1a2b3c4d", *reject],
            ["-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"],
            ["-d", "10.200.0.1/32", "-p", "tcp", "-m", "tcp", "--dport", "8181", "-j", "ACCEPT"],
            ["-d", "10.200.0.1/32", "-p", "tcp", "-m", "tcp", "--dport", "9102", "-j", "ACCEPT"],
            reject,
        ],
    )


def run(**overrides) -> RunSpec:
    fields = {
        "run_id": 7,
        "team": "data-team",
        "pipeline": "daily",
        "version": 2,
        "kernel": "python3",
        "parameters": {"n": 1},
        "timeout": 600,
    }
    profile = {
        "image": "pyspark",
        "env": {"PYSPARK_SUBMIT_ARGS": "--driver-memory 2g pyspark-shell"},
        "cpu_limit": 2.0,
        "memory_limit": 4 * GiB,
    }
    profile |= {k: overrides.pop(k) for k in list(overrides) if k in (*profile, "gpus", "cpu_guarantee")}
    return RunSpec(**{**fields, "profile": run_profile(**profile), **overrides})


PAPERMILL = [
    "python",
    "-m",
    "papermill",
    "input.ipynb",
    "output.ipynb",
    "--parameters_file",
    "parameters.json",
    "--kernel",
    "python3",
    "--log-output",
    "--no-progress-bar",
]


def test_a_pipeline_run_container():
    """A run: papermill in the version's image as jovyan, its CPU quota and memory limit, the run
    folder at one fixed path as its working folder, the hub's network without privileges, Spark on
    the container's loopback, labelled with the run, team and pipeline."""
    host = replace(HOST, hadoop_conf_dir="/srv/hadoop")
    settings = docker_run_settings(run(), host, "/data/pipelines/runs/7/work")
    assert asdict(settings) == {
        "name": "analysis-hub-1a2b3c4d-run-7",
        "image": IMAGES["pyspark"],
        "command": PAPERMILL,
        "environment": {
            "HADOOP_CONF_DIR": "/etc/hadoop/conf",
            "PYSPARK_SUBMIT_ARGS": "--driver-memory 2g pyspark-shell",
            "SPARK_DRIVER_HOST": "127.0.0.1",
            "SPARK_DRIVER_BIND_ADDRESS": "127.0.0.1",
            "SPARK_LOCAL_IP": "127.0.0.1",
            "NVIDIA_VISIBLE_DEVICES": "void",
            "CUDA_VISIBLE_DEVICES": "",
            "PYTHONUNBUFFERED": "1",
        },
        "host_config": {
            **SECURE,
            "mem_limit": 4 * GiB,
            "cpu_period": 100_000,
            "cpu_quota": 200_000,
            "binds": {
                "/data/pipelines/runs/7/work": {"bind": "/home/jovyan/run", "mode": "rw"},
                "/srv/hadoop": {"bind": "/etc/hadoop/conf", "mode": "ro"},
            },
        },
        "create_kwargs": {
            "user": "1000:100",
            "working_dir": "/home/jovyan/run",
            "labels": {
                "analysis-hub": "analysis-hub-1a2b3c4d",
                "analysis-hub.run": "7",
                "analysis-hub.team": "data-team",
                "analysis-hub.pipeline": "daily",
            },
        },
    }


def test_a_gpu_run_gets_exactly_its_gpus_and_the_catalogs_dev_shm():
    """The same GPU rules as servers: a device request by id and /dev/shm of half the memory limit."""
    host = DockerHostFacts(images=IMAGES, name_prefix="analysis-hub-1a2b3c4d", gpu_ids=("2",))
    spec = run(image="pytorch", env={}, gpus=1, cpu_limit=None, memory_limit=16 * GiB)
    settings = docker_run_settings(spec, host, "/runs/7/work")
    assert settings.host_config == {
        **SECURE,
        "device_requests": [{"device_ids": ["2"], "capabilities": [["gpu"]]}],
        "shm_size": 8 * GiB,
        "mem_limit": 16 * GiB,
        "binds": {"/runs/7/work": {"bind": "/home/jovyan/run", "mode": "rw"}},
    }
    assert settings.environment == {"NVIDIA_VISIBLE_DEVICES": "2", "PYTHONUNBUFFERED": "1"}
    with pytest.raises(ValueError, match="run 7 of data-team/daily needs 1 GPUs; 0 allocated"):
        docker_run_settings(spec, replace(host, gpu_ids=()), "/runs/7/work")


def test_the_server_is_told_its_profile_by_the_spawner_every_backend_shares(repo_catalog):
    """ANALYSIS_HUB_PROFILE (the lab extension reads it) is in the container's environment: the
    spawner all backends share adds it (`catalog_spawner.PROFILE_ENV`), not the translation."""
    from types import SimpleNamespace

    from analysis_hub.backends.catalog_spawner import PROFILE_ENV

    spawner = CatalogDockerSpawner(
        hub=SimpleNamespace(public_host="", url="http://hub:8081/hub/", base_url="/hub/", api_url=""),
        user=SimpleNamespace(name="alice", id=1, url="/user/alice/", escaped_name="alice"),
        orm_spawner=SimpleNamespace(name="", server=None),
    )
    spawner.resolved = resolve(repo_catalog.get("pyspark"))
    assert PROFILE_ENV == "ANALYSIS_HUB_PROFILE"
    assert spawner.get_env()[PROFILE_ENV] == "pyspark"


def test_a_users_named_servers_share_the_home_volume_in_containers_of_their_own(repo_catalog):
    """alice's default server and her named server 'spark' get containers of their own (names
    from DockerSpawner's templates) and the same home volume."""
    from types import SimpleNamespace

    def rendered(server: str) -> tuple[str, list[str]]:
        spawner = CatalogDockerSpawner(
            user=SimpleNamespace(name="alice", id=1, url="/user/alice/"),
            orm_spawner=SimpleNamespace(name=server, server=None),
        )
        spawner.prefix = HOST.name_prefix
        settings = docker_server_settings(resolve(repo_catalog.get("tensorflow")), HOST)
        return spawner._render_templates(spawner.name_template), [
            spawner._render_templates(volume) for volume in settings.volumes
        ]

    default_container, default_volumes = rendered("")
    named_container, named_volumes = rendered("spark")
    assert default_container != named_container
    assert default_volumes == named_volumes == [f"{HOST.name_prefix}-home-alice"]
