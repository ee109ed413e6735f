"""The docker executor's run folder: what the container wrote comes back, and nothing else does."""

from __future__ import annotations

import os

from analysis_hub.backends.docker.executor import collect_outputs, container_folder


def test_the_containers_files_move_up_and_links_it_planted_are_left_behind(tmp_path):
    """A run's notebook could plant `output.ipynb` as a link to a host file the service may read;
    only plain files move into the run's folder, and the container's folder is removed."""
    secret = tmp_path / "secret"
    secret.write_text("the service's")
    out_dir = tmp_path / "run"
    out_dir.mkdir()
    work = container_folder(out_dir)
    (work / "log-from-kernel.txt").write_text("kept")
    (work / "output.ipynb").symlink_to(secret)
    (work / "folder").mkdir()
    collect_outputs(work, out_dir)
    assert sorted(p.name for p in out_dir.iterdir()) == ["log-from-kernel.txt"]
    assert (out_dir / "log-from-kernel.txt").read_text() == "kept"


def test_the_containers_folder_is_jovyans_or_open_only_behind_the_private_run_folder(tmp_path):
    """As root, uid 1000 owns the mounted folder (0700); otherwise it is open to all, which is safe
    only because the run's folder above it is the service's alone (the executor makes it 0700)."""
    out_dir = tmp_path / "run"
    out_dir.mkdir(mode=0o700)
    work = container_folder(out_dir)
    facts = (work.stat().st_uid, work.stat().st_mode & 0o777)
    assert facts == ((1000, 0o700) if os.geteuid() == 0 else (os.geteuid(), 0o777))
