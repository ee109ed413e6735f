"""server_placement / run_placement: a resolved profile -> what the local backend's sandbox runs."""

from __future__ import annotations

from pathlib import Path

from analysis_hub.backends.local.translate import run_placement, server_placement
from analysis_hub.catalog import resolve
from analysis_hub.pipelines.publishing.specs import RunSpec
from analysis_hub.runtime.sandbox import Placement

GiB = 2**30
HOME = Path("/home/jupyter-alice")


def placement_of(resolved) -> Placement:
    return server_placement(
        resolved,
        name="jupyter-alice",
        owner="alice",
        user="jupyter-alice",
        home=HOME,
        teams=(),
        teams_root=None,
    )


def test_pytorch_cpu_option(repo_catalog):
    """pytorch with the CPU option runs without GPUs, limited to 2 CPUs and 4 GiB, in the pytorch env."""
    placement = placement_of(resolve(repo_catalog.get("pytorch"), {"accelerator": "cpu"}))
    assert placement == Placement(
        name="jupyter-alice",
        owner="alice",
        image="pytorch",
        user="jupyter-alice",
        home=HOME,
        workdir=HOME,
        memory_limit=4 * GiB,
        cpu_limit=2.0,
        gpus=0,
    )


def test_pyspark_large_option(repo_catalog):
    """pyspark large is limited to 4 CPUs and 16 GiB."""
    placement = placement_of(resolve(repo_catalog.get("pyspark"), {"size": "large"}))
    assert (placement.image, placement.cpu_limit, placement.memory_limit, placement.gpus) == (
        "pyspark",
        4.0,
        16 * GiB,
        0,
    )


def test_pytorch_default_keeps_one_gpu(repo_catalog):
    """pytorch's default option asks the local backend for one GPU."""
    placement = placement_of(resolve(repo_catalog.get("pytorch")))
    assert (placement.gpus, placement.cpu_limit, placement.memory_limit) == (1, 4.0, 16 * GiB)


def test_a_run_holds_what_its_step_holds_in_its_own_folder(repo_catalog, tmp_path):
    """A run's placement is named after the run and step, limited as its profile says, and its
    team folders' home is the run's folder."""
    spec = RunSpec(
        run_id=9,
        team="data-team",
        pipeline="daily",
        version=1,
        profile=resolve(repo_catalog.get("pyspark")),
        kernel="python3",
        parameters={},
        step="prepare",
    )
    placement = run_placement(
        spec, user=None, home=tmp_path, workdir=tmp_path / "run", teams=(), teams_root=None
    )
    r = spec.profile.resources
    assert (placement.name, placement.owner) == ("run-9-prepare", "run/9/prepare")
    assert (placement.cpu_limit, placement.memory_limit, placement.gpus) == (r.cpu_limit, r.memory_limit, 0)
    assert placement.teams_home == tmp_path / "run"
