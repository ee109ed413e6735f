"""One resolved profile gives the same image, resources and environment on every backend.

For a user's server and for a pipeline step (its `RunSpec` built the way the service builds
it, from the version's stored profile), each backend's pure translation is read back:
local (the sandbox's placement and the process environment), docker (the container's
settings) and kubernetes (KubeSpawner's pod settings, and the Job pod's). Guarantees are
reserved where a scheduler exists to honour them (docker's shares and reservation,
Kubernetes' requests); one machine's cgroups enforce the limits only.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from analysis_hub.backends.docker.translate import (
    CPU_SHARES_PER_CORE,
    DockerHostFacts,
    docker_run_settings,
    docker_server_settings,
)
from analysis_hub.backends.kubernetes.jobs import run_pod_settings
from analysis_hub.backends.kubernetes.translate import GPU_RESOURCE, ClusterFacts, pod_override
from analysis_hub.backends.local.translate import run_placement, server_placement
from analysis_hub.catalog import ResolvedProfile, resolve
from analysis_hub.pipelines.publishing.specs import RunSpec

IMAGES = {"pyspark": "pyspark:v1", "pytorch": "pytorch:v1", "tensorflow": "tensorflow:v1"}
CLUSTER = ClusterFacts(images=IMAGES)

CASES = [("pyspark", {"size": "large"}), ("pytorch", {}), ("tensorflow", {})]


def plans(resolved: ResolvedProfile, spec: RunSpec | None) -> dict[str, dict]:
    """What each backend runs, as (image, limits, guarantees, GPUs, environment)."""
    gpu_ids = tuple(str(i) for i in range(resolved.resources.gpus))
    host = DockerHostFacts(images=IMAGES, name_prefix="analysis-hub-test", gpu_ids=gpu_ids)
    if spec is None:
        local = server_placement(
            resolved, name="n", owner="o", user=None, home=Path("/h"), teams=(), teams_root=None
        )
        local_env = dict(resolved.env)
        docker = docker_server_settings(resolved, host)
        docker_config = {**docker.extra_host_config, "mem_limit": docker.mem_limit}
        docker_cpu, docker_env, docker_image = docker.cpu_limit, docker.environment, docker.image
        pod = pod_override(resolved, CLUSTER)
    else:
        local = run_placement(spec, user=None, home=Path("/h"), workdir=Path("/w"), teams=(), teams_root=None)
        local_env = spec.env
        docker = docker_run_settings(spec, host, "/runs/1")
        docker_config = docker.host_config
        quota = docker_config.get("cpu_quota")
        docker_cpu = quota / docker_config["cpu_period"] if quota else None
        docker_env, docker_image = docker.environment, docker.image
        pod = run_pod_settings(spec, CLUSTER)
    shares = docker_config.get("cpu_shares")
    return {
        "local": {
            "image": IMAGES[local.image],
            "limits": (local.cpu_limit, local.memory_limit),
            "gpus": local.gpus,
            "env": local_env,
        },
        "docker": {
            "image": docker_image,
            "limits": (docker_cpu, docker_config.get("mem_limit")),
            "guarantees": (
                shares / CPU_SHARES_PER_CORE if shares else None,
                docker_config.get("mem_reservation"),
            ),
            "gpus": len((docker_config.get("device_requests") or [{"device_ids": []}])[0]["device_ids"]),
            "env": docker_env,
        },
        "kubernetes": {
            "image": pod["image"],
            "limits": (pod["cpu_limit"], pod["mem_limit"]),
            "guarantees": (pod["cpu_guarantee"], pod["mem_guarantee"]),
            "gpus": pod["extra_resource_limits"].get(GPU_RESOURCE, 0),
            "env": pod["environment"],
        },
    }


def assert_same_everywhere(resolved: ResolvedProfile, spec: RunSpec | None = None) -> None:
    r = resolved.resources
    for backend, plan in plans(resolved, spec).items():
        assert plan["image"] == IMAGES[resolved.image], backend
        assert plan["limits"] == (r.cpu_limit, r.memory_limit), backend
        assert plan["gpus"] == r.gpus, backend
        assert plan.get("guarantees", (r.cpu_guarantee, r.memory_guarantee)) == (
            r.cpu_guarantee,
            r.memory_guarantee,
        ), backend
        # The profile's environment, unchanged (each backend adds its own, never instead).
        assert {k: plan["env"].get(k) for k in resolved.env} == resolved.env, backend


@pytest.mark.parametrize(("slug", "choices"), CASES)
def test_a_server_gets_the_same_image_resources_and_env_on_every_backend(repo_catalog, slug, choices):
    resolved = resolve(repo_catalog.get(slug), choices)
    assert resolved.resources.cpu_guarantee and resolved.resources.memory_limit  # something to compare
    assert_same_everywhere(resolved)


@pytest.mark.parametrize(("slug", "choices"), CASES)
def test_a_pipeline_step_gets_what_a_server_of_its_profile_gets_on_every_backend(repo_catalog, slug, choices):
    """The step's profile went through a version's storage (`to_stored`/`from_stored`), as in the
    service; every backend reserves what it says, guarantees included."""
    resolved = resolve(repo_catalog.get(slug), choices)
    stored = ResolvedProfile.from_stored(slug, resolved.image, resolved.choices, resolved.to_stored())
    assert (stored.resources, stored.env, stored.node_selector) == (
        resolved.resources,
        resolved.env,
        resolved.node_selector,
    )
    spec = RunSpec(
        run_id=1, team="data-team", pipeline="p", version=1, profile=stored, kernel="python3", parameters={}
    )
    assert_same_everywhere(stored, spec)
