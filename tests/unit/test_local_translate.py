"""local_server_spec: a resolved profile -> what the local backend runs."""

from __future__ import annotations

from dataclasses import asdict

from analysis_hub.backends.local.translate import LocalServerSpec, local_server_spec
from analysis_hub.catalog import resolve

GiB = 2**30


def test_pytorch_cpu_option(repo_catalog):
    """pytorch with the CPU option runs without GPUs at 1-2 CPUs and 2-4 GiB, keeping the profile env."""
    spec = local_server_spec(resolve(repo_catalog.get("pytorch"), {"accelerator": "cpu"}))
    assert spec == LocalServerSpec(
        slug="pytorch",
        display_name="PyTorch (GPU)",
        image="pytorch",
        env={"NVIDIA_DRIVER_CAPABILITIES": "compute,utility"},
        cpu_guarantee=1.0,
        cpu_limit=2.0,
        memory_guarantee=2 * GiB,
        memory_limit=4 * GiB,
        gpus=0,
    )


def test_pyspark_large_option(repo_catalog):
    """pyspark large runs at 2-4 CPUs and 8-16 GiB with the larger driver memory and the Hadoop conf."""
    spec = local_server_spec(resolve(repo_catalog.get("pyspark"), {"size": "large"}))
    assert asdict(spec) == {
        "slug": "pyspark",
        "display_name": "PySpark",
        "image": "pyspark",
        "env": {
            "HADOOP_CONF_DIR": "/etc/hadoop/conf",
            "PYSPARK_SUBMIT_ARGS": "--driver-memory 12g pyspark-shell",
        },
        "cpu_guarantee": 2.0,
        "cpu_limit": 4.0,
        "memory_guarantee": 8 * GiB,
        "memory_limit": 16 * GiB,
        "gpus": 0,
    }


def test_pytorch_default_keeps_one_gpu(repo_catalog):
    """pytorch's default option asks the local backend for one GPU."""
    spec = local_server_spec(resolve(repo_catalog.get("pytorch")))
    assert (spec.gpus, spec.cpu_limit, spec.memory_limit) == (1, 4.0, 16 * GiB)


def test_spec_env_is_a_copy(repo_catalog):
    """The spec's env is its own dict: changing it leaves the resolved profile alone."""
    resolved = resolve(repo_catalog.get("pyspark"))
    spec = local_server_spec(resolved)
    spec.env["EXTRA"] = "1"
    assert "EXTRA" not in resolved.env
