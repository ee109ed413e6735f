"""cgroup limits as written to the kernel's files, checked against a stand-in /sys/fs/cgroup in tmp_path.

No real cgroup is created: the module's ROOT points at a temporary folder laid
out like cgroup v2 or v1, and the tests read back the limit files it writes.
"""

from __future__ import annotations

import pytest
from analysis_hub.runtime import cgroups

PARENT = "analysis-hub-test"


@pytest.fixture
def v2_root(tmp_path, monkeypatch):
    (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    monkeypatch.setattr(cgroups, "ROOT", tmp_path)
    return tmp_path


@pytest.fixture
def v1_root(tmp_path, monkeypatch):
    (tmp_path / "memory").mkdir()
    (tmp_path / "cpu").mkdir()
    monkeypatch.setattr(cgroups, "ROOT", tmp_path)
    return tmp_path


def test_version_detection(tmp_path, monkeypatch):
    """version() tells v2 from v1 by the files present, and None when neither layout is there."""
    monkeypatch.setattr(cgroups, "ROOT", tmp_path)
    assert cgroups.version() is None and not cgroups.available()
    (tmp_path / "memory").mkdir()
    (tmp_path / "cpu").mkdir()
    assert cgroups.version() == 1
    (tmp_path / "cgroup.controllers").write_text("")
    assert cgroups.version() == 2 and cgroups.available()


def test_v2_limits(v2_root):
    """On cgroup v2, memory.max holds the byte limit, swap is off and cpu.max holds quota and period."""
    group = cgroups.Cgroup.create(PARENT, "jupyter-alice", 4 * 2**30, 1.5)
    path = v2_root / PARENT / "jupyter-alice"
    assert group.dirs == [path] and group.version == 2 and group.parent == PARENT
    assert (path / "memory.max").read_text() == str(4 * 2**30)
    assert (path / "memory.swap.max").read_text() == "0"
    assert (path / "cpu.max").read_text() == "150000 100000"
    assert "+memory" in (v2_root / PARENT / "cgroup.subtree_control").read_text()


def test_v2_no_limits(v2_root):
    """Without limits the v2 files say max."""
    cgroups.Cgroup.create(PARENT, "jupyter-bob", None, None)
    path = v2_root / PARENT / "jupyter-bob"
    assert (path / "memory.max").read_text() == "max"
    assert (path / "cpu.max").read_text() == "max"


def test_v1_limits(v1_root):
    """On cgroup v1, memory and memory+swap are capped at the limit and the CFS quota matches the cores."""
    group = cgroups.Cgroup.create(PARENT, "jupyter-alice", 2**30, 0.5)
    memory = v1_root / "memory" / PARENT / "jupyter-alice"
    cpu = v1_root / "cpu" / PARENT / "jupyter-alice"
    assert group.dirs == [memory, cpu] and group.version == 1
    assert (memory / "memory.limit_in_bytes").read_text() == str(2**30)
    assert (memory / "memory.memsw.limit_in_bytes").read_text() == str(2**30)
    assert (cpu / "cpu.cfs_period_us").read_text() == "100000"
    assert (cpu / "cpu.cfs_quota_us").read_text() == "50000"


def test_create_without_cgroups_raises(tmp_path, monkeypatch):
    """Where cgroups are not usable, create() raises OSError rather than running unlimited."""
    monkeypatch.setattr(cgroups, "ROOT", tmp_path)
    with pytest.raises(OSError, match="not writable"):
        cgroups.Cgroup.create(PARENT, "jupyter-alice", 2**30, 1)
    assert cgroups.Cgroup.open(PARENT, "jupyter-alice") is None


@pytest.mark.parametrize(
    ("events", "killed"),
    [("low 0\nhigh 0\nmax 3\noom 1\noom_kill 0\n", False), ("oom 2\noom_kill 1\n", True), (None, False)],
)
def test_oom_killed_v2(v2_root, events, killed):
    """oom_killed() is true only when memory.events counts an OOM kill."""
    group = cgroups.Cgroup.open(PARENT, "jupyter-alice")
    group.dirs[0].mkdir(parents=True)
    if events is not None:
        (group.dirs[0] / "memory.events").write_text(events)
    assert group.oom_killed() is killed


def test_oom_killed_v1(v1_root):
    """On v1, oom_killed() reads memory.oom_control's oom_kill counter."""
    group = cgroups.Cgroup.create(PARENT, "jupyter-alice", 2**30, 1)
    (group.dirs[0] / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    assert group.oom_killed()


def test_pids_of_a_missing_group(v2_root):
    """A cgroup that is gone has no processes, and removing it again is harmless."""
    group = cgroups.Cgroup.open(PARENT, "jupyter-nobody")
    assert group.pids() == []
    group.kill_all()
    group.remove()


def test_hubs_use_separate_parents(v2_root):
    """Two hubs (two parents) keep servers of the same name in separate cgroups."""
    a = cgroups.Cgroup.create("analysis-hub-one", "jupyter-alice", 2**30, 1)
    b = cgroups.Cgroup.create("analysis-hub-two", "jupyter-alice", 2 * 2**30, 2)
    assert a.dirs != b.dirs
    assert (a.dirs[0] / "memory.max").read_text() == str(2**30)
    assert (b.dirs[0] / "memory.max").read_text() == str(2 * 2**30)
