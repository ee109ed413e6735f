"""docker_server_settings: a resolved profile -> DockerSpawner traits, and the docker backend's config."""

from __future__ import annotations

import json
import sys
import textwrap
from dataclasses import asdict, replace

import pytest
from analysis_hub.backends.docker.spawner import CatalogDockerSpawner, read_image_tags
from analysis_hub.backends.docker.translate import DockerHostFacts, ImageNotBuilt, docker_server_settings
from analysis_hub.catalog import resolve
from analysis_hub.config import HostFacts, apply_settings
from analysis_hub.images import discover_images, hadoop_images
from analysis_hub.settings import SettingsError, load_settings
from traitlets.config import Config
from unit_support import IMAGES as IMAGES_FOLDER

GiB = 2**30
IMAGES = {
    "pyspark": "analysis-hub/pyspark:0123456789ab",
    "pytorch": "analysis-hub/pytorch:0123456789ab",
    "tensorflow": "analysis-hub/tensorflow:0123456789ab",
}
# What images/*/image.yaml declares: pyspark is the Hadoop client.
HADOOP_IMAGES = hadoop_images(discover_images(IMAGES_FOLDER))
HOST = DockerHostFacts(images=IMAGES, name_prefix="analysis-hub-1a2b3c4d", hadoop_images=HADOOP_IMAGES)
SECURE = {"network_mode": "host", "security_opt": ["no-new-privileges"], "cap_drop": ["ALL"]}
JOVYAN = {"user": "1000:100", "working_dir": "/home/jovyan"}
HOME = {"analysis-hub-1a2b3c4d-home-{username}": {"bind": "/home/jovyan", "mode": "rw"}}


def test_pyspark_default(repo_catalog):
    """pyspark: its image, --cpus 2 --memory 4g with guarantees as shares and a reservation, no GPUs,
    the home volume, the profile env, as uid 1000 without privileges on loopback."""
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
            "ANALYSIS_HUB_PROFILE": "pyspark",
        },
        "volumes": HOME,
        "extra_host_config": {**SECURE, "cpu_shares": 1024, "mem_reservation": 2 * GiB},
        "extra_create_kwargs": JOVYAN,
    }


def test_pytorch_gpu_gets_exactly_its_allocated_gpus(repo_catalog):
    """A GPU profile asks the engine for the GPUs the hub allocated, by id, never 'all'."""
    host = DockerHostFacts(images=IMAGES, name_prefix="analysis-hub-1a2b3c4d", gpu_ids=("1", "3"))
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
        "ANALYSIS_HUB_PROFILE": "pytorch",
    }
    assert (settings.cpu_limit, settings.mem_limit) == (8.0, 32 * GiB)


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


def test_spark_stays_on_loopback_unless_the_profile_says_otherwise(repo_catalog):
    """Host networking: Spark's driver and UI listen on loopback; a profile's env (a cluster's
    executors must reach the driver) wins; images without Spark get none of it."""
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


def configure(tmp_path, text: str) -> Config:
    path = tmp_path / "settings.yaml"
    path.write_text(textwrap.dedent(text))
    settings = load_settings(path, environ={})
    return apply_settings(settings, Config(), HostFacts(is_root=False, cgroups_writable=False)), settings


def test_docker_backend_config(tmp_path):
    """backend: docker selects CatalogDockerSpawner with the catalog, tags file (relative to the
    settings file), per-hub names, removed containers and the culler's activity interval."""
    c, settings = configure(
        tmp_path,
        """\
        backend: docker
        culler: {every: 30}
        docker: {images: {pyspark: mine/pyspark:1}, hadoop_conf_dir: hadoop}
        """,
    )
    assert c.JupyterHub.spawner_class == "analysis_hub.backends.docker.spawner.CatalogDockerSpawner"
    spawner = c.CatalogDockerSpawner
    assert spawner.image_tags_file == str(tmp_path / "build" / "image-tags.json")
    assert spawner.image_references == {"pyspark": "mine/pyspark:1"}
    assert spawner.hadoop_conf_dir == str(tmp_path / "hadoop")
    assert spawner.prefix == settings.instance_name
    assert spawner.remove is True
    assert c.CatalogSpawner.activity_interval == 30
    assert c.CatalogSpawner.catalog_dir == str(tmp_path / "profiles")
    assert c.CatalogSpawner.start_timeout == settings.docker.start_timeout
    configurable = set(CatalogDockerSpawner.class_trait_names(config=True))
    assert set(spawner) | set(c.CatalogSpawner) <= configurable, sorted(set(spawner) - configurable)


def test_unknown_docker_key_is_refused(tmp_path):
    with pytest.raises(SettingsError, match=r"docker\.image_tag"):
        configure(tmp_path, "backend: docker\ndocker: {image_tag: x}\n")


def test_up_warns_about_images_not_built(tmp_path):
    """`up` with backend docker names each catalog image without a built tag, and nothing else."""
    from analysis_hub.cli import preflight
    from unit_support import IMAGES as IMAGES_DIR
    from unit_support import PROFILES

    (tmp_path / "tags.json").write_text(json.dumps({"pyspark": IMAGES["pyspark"]}))
    _, settings = configure(
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


def test_spawner_defaults_keep_servers_on_loopback_of_the_host_network():
    """Host networking without port mappings, the server bound to 127.0.0.1 only."""
    spawner = CatalogDockerSpawner()
    assert (spawner.ip, spawner.network_name, spawner.use_internal_ip) == ("127.0.0.1", "host", True)


def test_up_warns_about_an_unreadable_tags_file(tmp_path):
    """A broken tags file is one clear warning from `up`, not a traceback."""
    from analysis_hub.cli import preflight
    from unit_support import IMAGES as IMAGES_DIR
    from unit_support import PROFILES

    (tmp_path / "tags.json").write_text("{")
    _, settings = configure(
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
