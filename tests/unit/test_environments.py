"""Per-image Python environments: keyed by lock file and Python, built once, never half-used.

The build tests create real virtual environments from a tiny image whose lock
file holds only a comment, so pip installs nothing and each build takes seconds.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_asyncio
from analysis_hub.runtime.environments import (
    READY_MARKER,
    SERVER_EXTENSION_DIR,
    EnvironmentBuilder,
    EnvironmentBuildError,
    environment_key,
)

EMPTY_LOCK = "# nothing to install: the tests only need a venv\n"
MISSING_PACKAGE_LOCK = "this-package-does-not-exist-analysis-hub==1.0\n"


def make_image(images_dir: Path, name: str, lock: str = EMPTY_LOCK) -> Path:
    folder = images_dir / name
    folder.mkdir(parents=True)
    (folder / "requirements.txt").write_text(lock)
    return folder


def extension_targets(env: Path) -> dict[Path, Path]:
    [site_packages] = (env / "lib").glob("python3*/site-packages")
    return {
        SERVER_EXTENSION_DIR / "analysis_hub_activity.py": site_packages / "analysis_hub_activity.py",
        SERVER_EXTENSION_DIR / "analysis_hub_activity.json": env
        / "etc/jupyter/jupyter_server_config.d/analysis_hub_activity.json",
    }


def building_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("Building")]


# ---- keys and paths (pure) -------------------------------------------------------


def test_environment_key_changes_with_lock_and_python(tmp_path):
    """The key is stable for the same lock and Python, and changes when either changes."""
    lock = tmp_path / "requirements.txt"
    lock.write_text("numpy==2.0.0\n")
    key = environment_key([lock], "3.11")
    assert key == environment_key([lock], "3.11")
    assert len(key) == 12 and all(ch in "0123456789abcdef" for ch in key)
    assert environment_key([lock], "3.12") != key
    lock.write_text("numpy==2.0.1\n")
    assert environment_key([lock], "3.11") != key


def test_path_for_follows_the_lock_file(tmp_path):
    """Editing an image's lock file gives the image a new environment folder."""
    make_image(tmp_path / "images", "tiny")
    builder = EnvironmentBuilder(tmp_path / "envs", tmp_path / "images", python=sys.executable)
    before = builder.path_for("tiny")
    assert before.parent == tmp_path / "envs" and before.name.startswith("tiny-")
    (tmp_path / "images" / "tiny" / "requirements.txt").write_text("# changed\n")
    assert builder.path_for("tiny") != before
    assert not (builder.path_for("tiny") / READY_MARKER).is_file()


def test_cuda_lock_is_added_only_with_cuda(tmp_path):
    """On a GPU machine the image's CUDA lock file joins its lock, giving a different environment."""
    folder = make_image(tmp_path / "images", "gpu")
    (folder / "requirements-cuda.txt").write_text("nvidia-cuda-runtime==1.0\n")
    plain = EnvironmentBuilder(tmp_path / "envs", tmp_path / "images", python=sys.executable)
    cuda = EnvironmentBuilder(tmp_path / "envs", tmp_path / "images", python=sys.executable, with_cuda=True)
    assert [f.name for f in plain.lock_files("gpu")] == ["requirements.txt"]
    assert [f.name for f in cuda.lock_files("gpu")] == ["requirements.txt", "requirements-cuda.txt"]
    assert plain.path_for("gpu") != cuda.path_for("gpu")


def test_image_without_lock_file(tmp_path):
    """An image folder without requirements.txt is refused, naming the missing file."""
    (tmp_path / "images" / "bare").mkdir(parents=True)
    builder = EnvironmentBuilder(tmp_path / "envs", tmp_path / "images", python=sys.executable)
    with pytest.raises(EnvironmentBuildError, match=r"image 'bare' has no lock file at .*requirements.txt"):
        builder.path_for("bare")


def test_builder_records_the_interpreters_version(tmp_path):
    """The builder keys environments by the version of the interpreter it builds them with."""
    builder = EnvironmentBuilder(tmp_path / "envs", tmp_path / "images", python=sys.executable)
    assert builder.python_version == f"{sys.version_info[0]}.{sys.version_info[1]}"


# ---- real builds -------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def built(tmp_path_factory):
    """One real build of a tiny image, started by two concurrent ensure() calls."""
    root = tmp_path_factory.mktemp("envs")
    make_image(root / "images", "tiny")
    builder = EnvironmentBuilder(root / "envs", root / "images")
    lines: list[str] = []
    paths = await asyncio.gather(builder.ensure("tiny", lines.append), builder.ensure("tiny", lines.append))
    return builder, paths, lines


async def test_concurrent_ensure_builds_once(built):
    """Two spawns of one profile at once share a single build and get the same environment."""
    builder, paths, lines = built
    assert len(building_lines(lines)) == 1, lines
    assert paths[0] == paths[1] == builder.path_for("tiny")
    assert any(line.startswith("Waiting for the tiny environment") for line in lines)
    assert any(line.startswith("Built the tiny environment") for line in lines)


async def test_ensure_builds_a_real_venv(built):
    """ensure() makes a working virtual environment of the builder's Python and marks it ready, last."""
    builder, [env, _], _ = built
    assert (builder.path_for("tiny") / READY_MARKER).is_file()
    marker = env / READY_MARKER
    assert marker.is_file()
    assert f"python {builder.python_version}" in marker.read_text()
    assert not (env / f"{READY_MARKER}.tmp").exists()
    probe = "import sys; print(sys.prefix != sys.base_prefix, '%d.%d' % sys.version_info[:2])"
    out = subprocess.run(
        [str(env / "bin" / "python"), "-c", probe], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["True", builder.python_version]
    assert (env / "pyvenv.cfg").is_file()
    assert (env.parent / f"{env.name}.log").is_file()


async def test_ensure_installs_server_extension(built):
    """The activity extension is copied into site-packages and enabled in jupyter_server_config.d."""
    _, [env, _], _ = built
    for source, target in extension_targets(env).items():
        assert target.read_bytes() == source.read_bytes(), target


async def test_ready_environment_is_reused_and_extension_refreshed(built):
    """A ready environment is returned without building, and a stale extension copy is refreshed."""
    builder, [env, _], _ = built
    targets = extension_targets(env)
    stale = next(iter(targets.values()))
    stale.write_text("# an old copy of the extension\n")
    lines: list[str] = []
    assert await builder.ensure("tiny", lines.append) == env
    assert lines == []
    for source, target in targets.items():
        assert target.read_bytes() == source.read_bytes()


async def test_incomplete_environment_is_wiped_and_rebuilt(tmp_path):
    """A leftover environment folder without the ready marker is removed and built afresh."""
    make_image(tmp_path / "images", "tiny")
    builder = EnvironmentBuilder(tmp_path / "envs", tmp_path / "images")
    env = builder.path_for("tiny")
    (env / "lib").mkdir(parents=True)
    (env / "half-installed.txt").write_text("interrupted build")
    assert not (builder.path_for("tiny") / READY_MARKER).is_file()
    lines: list[str] = []
    assert await builder.ensure("tiny", lines.append) == env
    assert "Removing an incomplete tiny environment" in lines
    assert len(building_lines(lines)) == 1
    assert not (env / "half-installed.txt").exists()
    assert (env / READY_MARKER).is_file()
    assert (env / "bin" / "python").exists()


async def test_failed_build_raises_with_log_and_is_never_ready(tmp_path, monkeypatch):
    """A lock naming a package that does not exist fails with pip's error and the log path, and no marker."""
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # stay offline: the package is found nowhere anyway
    make_image(tmp_path / "images", "broken", MISSING_PACKAGE_LOCK)
    builder = EnvironmentBuilder(tmp_path / "envs", tmp_path / "images")
    env = builder.path_for("broken")
    log_path = tmp_path / "envs" / f"{env.name}.log"
    lines: list[str] = []
    with pytest.raises(EnvironmentBuildError) as caught:
        await builder.ensure("broken", lines.append)
    message = str(caught.value)
    assert f"full log: {log_path}" in message
    assert "pip exited" in message
    assert "this-package-does-not-exist-analysis-hub" in message
    assert "this-package-does-not-exist-analysis-hub" in log_path.read_text()
    assert any(line.startswith("ERROR") for line in lines)
    assert not (env / READY_MARKER).exists()
    assert not (env / f"{READY_MARKER}.tmp").exists()
    assert not (builder.path_for("broken") / READY_MARKER).is_file()

    # The half-built folder is never reused: the next attempt wipes it and fails again.
    lines.clear()
    with pytest.raises(EnvironmentBuildError):
        await builder.ensure("broken", lines.append)
    assert "Removing an incomplete broken environment" in lines
    assert not (env / READY_MARKER).exists()


def write_wheel(folder: Path, name: str, version: str = "1.0") -> None:
    """A minimal pure-Python wheel (one module), so that a build installs packages offline."""
    import zipfile

    folder.mkdir(parents=True, exist_ok=True)
    dist_info = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": "VALUE = 1\n",
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist_info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = "".join(f"{path},,\n" for path in files) + f"{dist_info}/RECORD,,\n"
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as wheel:
        for path, text in {**files, f"{dist_info}/RECORD": record}.items():
            wheel.writestr(path, text)


async def test_a_build_reports_phases_and_counts_not_pips_lines(tmp_path, monkeypatch):
    """Building an environment of three locked packages reports how many are fetched, then that
    they are installed, each line with how far the build is (rising to 1); pip's own lines
    (`Processing /…whl`, `Installing collected packages: a, b, c`) stay in the build's log."""
    names = ["tinyone", "tinytwo", "tinythree"]
    for name in names:
        write_wheel(tmp_path / "wheels", name)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "wheels"))
    make_image(tmp_path / "images", "three", "".join(f"{name}==1.0\n" for name in names))
    builder = EnvironmentBuilder(tmp_path / "envs", tmp_path / "images")
    lines: list[str] = []
    env = await builder.ensure("three", lines.append)

    shown = [line for line in lines if not line.startswith(("Building", "Built"))]
    assert shown == [
        "Fetching packages: 1 of 3",
        "Fetching packages: 2 of 3",
        "Fetching packages: 3 of 3",
        "Installing 3 packages",
        "Installed 3 packages",
    ], lines
    done = [line.done for line in lines]
    assert done == sorted(done) and done[0] == 0 and done[-1] == 1, done
    log = (env.parent / f"{env.name}.log").read_text()
    assert "Installing collected packages:" in log and "Processing " in log
