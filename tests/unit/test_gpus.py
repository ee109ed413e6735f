"""The GPU pool. No GPU exists on the test machine, so the pool is tested as the bookkeeping it is."""

from __future__ import annotations

import os
import stat

import pytest
from analysis_hub.runtime.gpus import GpuPool, GpuUnavailable, detect_gpus


def test_allocate_distinct_devices_per_owner():
    """No GPU exists here (bookkeeping only): different owners get different devices."""
    pool = GpuPool(["0", "1", "2", "3"])
    a = pool.allocate("alice", 1)
    b = pool.allocate("bob", 2)
    assert len(a) == 1 and len(b) == 2
    assert not set(a) & set(b)
    assert set(a) | set(b) <= {"0", "1", "2", "3"}
    assert pool.free() == [i for i in pool.indices if i not in a + b]
    assert pool.total == 4


def test_allocate_zero_gpus():
    """No GPU exists here (bookkeeping only): asking for none takes none, even from an empty pool."""
    pool = GpuPool([])
    assert pool.allocate("alice", 0) == []
    assert pool.total == 0


def test_exhausted_pool_raises():
    """No GPU exists here (bookkeeping only): asking for more than is free raises GpuUnavailable."""
    pool = GpuPool(["0", "1"])
    pool.allocate("alice", 2)
    with pytest.raises(GpuUnavailable, match=r"all 2 GPUs are in use \(0 free, 1 needed\)"):
        pool.allocate("bob", 1)
    with pytest.raises(GpuUnavailable):
        GpuPool(["0"]).allocate("carol", 2)


def test_release_frees_devices():
    """No GPU exists here (bookkeeping only): released devices can be allocated again."""
    pool = GpuPool(["0"])
    first = pool.allocate("alice", 1)
    pool.release("alice")
    assert pool.free() == ["0"]
    assert pool.allocate("bob", 1) == first
    pool.release("nobody")  # releasing an owner without GPUs is harmless
    assert pool.free() == []


def test_reallocate_replaces_own_allocation():
    """No GPU exists here (bookkeeping only): an owner allocating again gives back what it held first."""
    pool = GpuPool(["0", "1"])
    pool.allocate("alice", 2)
    assert len(pool.allocate("alice", 1)) == 1
    assert len(pool.free()) == 1


def test_claim_restores_allocation_after_restart():
    """No GPU exists here (bookkeeping only): claimed devices count as taken; unknown indices are dropped."""
    pool = GpuPool(["0", "1"])
    pool.claim("alice", ["1", "7"])
    assert pool.owners["alice"] == ["1"]
    assert pool.free() == ["0"]
    assert pool.allocate("bob", 1) == ["0"]
    with pytest.raises(GpuUnavailable):
        pool.allocate("carol", 1)


def test_detect_gpus_without_nvidia_smi(monkeypatch, tmp_path):
    """Without nvidia-smi on PATH there are no GPUs."""
    monkeypatch.setenv("PATH", str(tmp_path))
    assert detect_gpus() == []


def fake_nvidia_smi(folder, script: str):
    path = folder / "nvidia-smi"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_detect_gpus_reads_nvidia_smi(monkeypatch, tmp_path):
    """detect_gpus lists the indices nvidia-smi prints (a stand-in script here: no GPU exists)."""
    fake_nvidia_smi(tmp_path, 'echo "0"; echo "1"; echo ""\n')
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}/usr/bin:/bin")
    assert detect_gpus() == ["0", "1"]


def test_detect_gpus_when_nvidia_smi_fails(monkeypatch, tmp_path):
    """A failing nvidia-smi (no driver) means no GPUs, not an error."""
    fake_nvidia_smi(tmp_path, "echo 'NVIDIA-SMI has failed' >&2; exit 9\n")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}/usr/bin:/bin")
    assert detect_gpus() == []
