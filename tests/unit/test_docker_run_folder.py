"""The docker executor without an engine: its run folder (what the container wrote comes back, and
nothing else does) and its GPUs from the machine's pool."""

from __future__ import annotations

import asyncio
import os

from analysis_hub.backends.docker.executor import DockerExecutor, collect_outputs, container_folder
from analysis_hub.pipelines.publishing.specs import RunSpec
from analysis_hub.runtime.gpus import GpuPool
from unit_support import run_profile


def test_the_containers_files_move_up_and_links_it_planted_are_left_behind(tmp_path):
    """A run's notebook could plant `output.ipynb` as a link to a host file the service may read, or
    forge the log; only plain files move into the run's folder, never over the service's log, and
    the container's folder is removed."""
    secret = tmp_path / "secret"
    secret.write_text("the service's")
    out_dir = tmp_path / "run"
    out_dir.mkdir()
    work = container_folder(out_dir)
    (out_dir / "log.txt").write_text("the container's output, as the engine gave it")
    (work / "log.txt").write_text("forged")
    (work / "log-from-kernel.txt").write_text("kept")
    (work / "output.ipynb").symlink_to(secret)
    (work / "folder").mkdir()
    collect_outputs(work, out_dir)
    assert sorted(p.name for p in out_dir.iterdir()) == ["log-from-kernel.txt", "log.txt"]
    assert (out_dir / "log-from-kernel.txt").read_text() == "kept"
    assert (out_dir / "log.txt").read_text() == "the container's output, as the engine gave it"


def test_the_containers_folder_is_jovyans_or_open_only_behind_the_private_run_folder(tmp_path):
    """As root, uid 1000 owns the mounted folder (0700); otherwise it is open to all, which is safe
    only because the run's folder above it is the service's alone (the executor makes it 0700)."""
    out_dir = tmp_path / "run"
    out_dir.mkdir(mode=0o700)
    work = container_folder(out_dir)
    facts = (work.stat().st_uid, work.stat().st_mode & 0o777)
    assert facts == ((1000, 0o700) if os.geteuid() == 0 else (os.geteuid(), 0o777))


def spec(gpus: int) -> RunSpec:
    return RunSpec(
        run_id=5,
        team="gpu-team",
        pipeline="train",
        version=1,
        profile=run_profile("pytorch", gpus=gpus),
        kernel="python3",
        parameters={},
    )


def executor(tmp_path, pool: GpuPool) -> DockerExecutor:
    return DockerExecutor(str(tmp_path / "no-tags.json"), {}, "analysis-hub-1a2b3c4d", 8081, pool)


def test_a_gpu_run_without_a_free_gpu_fails_saying_so(tmp_path):
    """The run's GPUs come from the machine's pool (stand-in GPU ids: no GPU here); when a server
    holds the only one, the run fails before any container, and says why in its log."""
    pool = GpuPool(["0"], tmp_path / "gpus.json")
    pool.allocate("alice", 1)
    outcome = asyncio.run(executor(tmp_path, pool).run(spec(1), "{}", tmp_path / "run"))
    assert (outcome.status, outcome.reason) == (
        "failed",
        "no GPU for the run: all 1 GPUs are in use (0 free, 1 needed); try again later or pick a CPU option",
    )
    assert "all 1 GPUs are in use" in (tmp_path / "run" / "log.txt").read_text()
    assert pool.owners == {"alice": ["0"]}


def test_a_runs_gpus_go_back_to_the_pool_when_it_ends(tmp_path):
    """A run that took a GPU and then failed (its image was never built) leaves the pool as it was."""
    pool = GpuPool(["0", "1"], tmp_path / "gpus.json")
    outcome = asyncio.run(executor(tmp_path, pool).run(spec(1), "{}", tmp_path / "run"))
    assert outcome.status == "failed" and "python scripts/build_images.py pytorch" in outcome.reason
    assert pool.owners == {}
