"""secure_state: the pipelines state folder is the service's alone, underneath the API too.

The modes are checked on every machine; as root (as in CI), a real process
running as `nobody` tries to read what an older installation left open.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest
from analysis_hub.pipelines.store.state_folder import secure_state


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def old_state():
    """A state folder as earlier releases left it: everything world-readable below a 0711 folder."""
    top = Path(tempfile.mkdtemp(prefix="pipelines-state-", dir="/tmp"))
    top.chmod(0o755)
    data = top / "pipelines"
    for folder in (data, data / "repos" / "data-team" / ".git", data / "runs" / "7"):
        folder.mkdir(parents=True)
        folder.chmod(0o755)
    data.chmod(0o711)
    files = [
        data / "pipelines.sqlite",
        data / "repos" / "data-team" / ".git" / "HEAD",
        data / "runs" / "7" / "output.ipynb",
    ]
    for path in files:
        path.write_text("secret")
        path.chmod(0o644)
    (top / "public.txt").write_text("anyone")
    (top / "public.txt").chmod(0o644)
    yield data, files
    shutil.rmtree(top)


def test_an_old_installation_is_migrated_and_the_migration_logged(old_state, caplog):
    data, _ = old_state
    with caplog.at_level(logging.INFO, logger="test.state"):
        secure_state(data, logging.getLogger("test.state"))
    assert mode(data) == 0o711
    assert mode(data / "pipelines.sqlite") == 0o600
    assert mode(data / "repos") == 0o700
    assert mode(data / "runs") == 0o711
    assert mode(data / "runs" / "7") == 0o700
    changed = sorted(r.getMessage() for r in caplog.records)
    assert f"pipelines state: {data / 'repos'} mode 0755 -> 0700" in changed
    assert f"pipelines state: {data / 'pipelines.sqlite'} mode 0644 -> 0600" in changed
    caplog.clear()
    secure_state(data, logging.getLogger("test.state"))
    assert not caplog.records, "a second start changes nothing and says nothing"


@pytest.mark.skipif(os.geteuid() != 0, reason="reading as another Unix user needs root to switch to it")
def test_another_unix_user_reads_nothing_after_the_migration(old_state):
    """Before: nobody reads every file. After: nobody reads none, while a world-readable file
    beside the folder stays readable (so the denial comes from the state's modes)."""
    data, files = old_state

    def readable_by_nobody(path: Path) -> bool:
        return subprocess.run(["head", "-c1", str(path)], user="nobody", capture_output=True).returncode == 0

    assert all(readable_by_nobody(path) for path in files), "the old layout was open"
    secure_state(data, logging.getLogger("test.state"))
    assert [readable_by_nobody(path) for path in files] == [False, False, False]
    assert readable_by_nobody(data.parent / "public.txt")
