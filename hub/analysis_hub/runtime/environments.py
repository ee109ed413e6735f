"""Python environments for the local backend, built from each image's lock file.

Contract:
- An image `images/<name>/` pins its Python dependencies in
  `requirements.txt`, the same file its Dockerfile installs. The environment
  for it lives at `<envs_dir>/<name>-<key>`, where the key hashes that file
  and the Python version: change the lock, get a new environment.
- `EnvironmentBuilder.ensure(image, progress)` returns the ready
  environment, building it on first use. Only an environment with its
  `READY_MARKER` is ever used, and the marker is written last, by rename,
  so a failed or interrupted build is never reused; the next attempt wipes
  and rebuilds it.
- One build per environment at a time: an `asyncio.Lock` inside the hub and
  an `flock` across processes (a second hub, the pipelines service), so a
  crowd of users spawning one profile waits for the same build.
- The analysis-hub server extension (the activity policy) is copied into
  every environment, refreshed on each `ensure`, so a fix to it reaches
  existing environments without a rebuild. So is the JupyterLab extension
  ("Publish as pipeline…"), the wheel `make lab` built (`lab_extension.py`);
  when it was not built, spawns go on without it and the log says so.
- Each environment's `python3` kernel carries the image's display name
  (`kernels.named_kernelspec`), written after a build and refreshed on each
  `ensure` like the extension: the key is unchanged, so environments built
  before kernels were named are reused, and named at their next use.
- `progress` receives `pip_progress.Step`s, human-readable lines with how
  far the build is: its phases and counts (packages fetched, installing,
  installed, how long a silent install has taken), never pip's own lines
  apart from its errors; pip's full output goes to the build's log file. A
  failed build raises `EnvironmentBuildError` carrying the tail of pip's
  output and the path of the full log.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ..images import discover_images
from ..kernels import KERNEL_NAME, kernel_display_name, named_kernelspec
from ..metrics import ENVIRONMENT_BUILD_DURATION, ENVIRONMENT_BUILDS
from .lab_extension import built_wheel, install_wheel
from .pip_progress import PipProgress, Step, requirement_count

SERVER_EXTENSION_DIR = Path(__file__).resolve().parent.parent / "singleuser"
REPO = Path(__file__).resolve().parents[3]  # where `make lab` leaves lab-extension/dist/
log = logging.getLogger(__name__)
LOCK_FILE = "requirements.txt"
# An image's Spark settings and logging, beside its lock file (images/pyspark).
SPARK_CONF_FILES = ("spark-defaults.conf", "log4j2.properties")
CUDA_LOCK_FILE = "requirements-cuda.txt"  # CUDA runtime wheels, added on GPU machines
READY_MARKER = ".analysis-hub-ready"
# The machine's pip configuration may add index locations that don't exist;
# their warnings say nothing useful to a person watching a spawn.
_NOISE = ("WARNING: Location", "[notice]")
WAITING_NOTICE_S = 10  # a silent pip (installing) gets a line on the spawn page this often


class EnvironmentBuildError(RuntimeError):
    pass


def environment_key(lock_files: list[Path], python_version: str) -> str:
    digest = hashlib.sha256()
    for lock_file in lock_files:
        digest.update(lock_file.read_bytes())
    digest.update(f"python{python_version}".encode())
    return digest.hexdigest()[:12]


def install_server_extension(env: Path, image_dir: Path | None = None) -> None:
    """Copy the activity-policy extension, the config enabling it, the step-outputs module
    (`analysis_hub_outputs`), the servers' and kernels' quieter logs (`analysis_hub_quiet`
    with `analysis_hub_server.json` and `ipython_kernel_config.json`), and our
    JupyterLab defaults (no news or update checks: servers may have no internet) into `env`;
    with pyspark in `env`, the image's Spark settings and logging (`SPARK_CONF_FILES` in
    `image_dir`) into pyspark's own conf/, where Spark looks when SPARK_CONF_DIR is not set."""
    site_packages = next((env / "lib").glob("python3*/site-packages"))
    server_config = env / "etc/jupyter/jupyter_server_config.d"
    targets = {
        SERVER_EXTENSION_DIR / "analysis_hub_activity.py": site_packages / "analysis_hub_activity.py",
        SERVER_EXTENSION_DIR / "analysis_hub_outputs.py": site_packages / "analysis_hub_outputs.py",
        SERVER_EXTENSION_DIR / "analysis_hub_quiet.py": site_packages / "analysis_hub_quiet.py",
        SERVER_EXTENSION_DIR / "analysis_hub_activity.json": server_config / "analysis_hub_activity.json",
        # Not in config.d: jupyter_server reads only extensions' switches from there.
        SERVER_EXTENSION_DIR / "analysis_hub_server.json": env / "etc/jupyter/jupyter_server_config.json",
        SERVER_EXTENSION_DIR / "ipython_kernel_config.json": env / "etc/ipython/ipython_kernel_config.json",
        SERVER_EXTENSION_DIR / "overrides.json": env / "share/jupyter/lab/settings/overrides.json",
    }
    if image_dir and (site_packages / "pyspark").is_dir():
        for name in SPARK_CONF_FILES:
            if (image_dir / name).is_file():
                targets[image_dir / name] = site_packages / "pyspark" / "conf" / name
    for source, target in targets.items():
        if not target.is_file() or target.read_bytes() != source.read_bytes():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)


def name_kernel(env: Path, display_name: str) -> None:
    """Give the environment's `python3` kernelspec (ipykernel's, in the environment) `display_name`."""
    path = env / "share" / "jupyter" / "kernels" / KERNEL_NAME / "kernel.json"
    if path.is_file():
        spec = json.loads(path.read_text())
    else:  # ipykernel without its data files: the spec it would have installed
        spec = {"argv": [str(env / "bin" / "python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"]}
        spec["language"] = "python"
    named = named_kernelspec(spec, display_name)
    if named != spec or not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(named, indent=1))
        os.replace(temporary, path)  # a server listing kernels never reads half a file


def python_for_all_users(preferred: str = sys._base_executable) -> str:
    """An interpreter that every Unix user can run, of the hub's Python version.

    Servers run as other Unix users, so an interpreter under a private home
    (pyenv in /root, say) can't serve them; fall back to the system's
    `pythonX.Y` of the same minor version.
    """
    candidates = [preferred, f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}"]
    for candidate in candidates:
        if os.path.exists(candidate) and _world_executable(Path(candidate).resolve()):
            return candidate
    return preferred


def _world_executable(path: Path) -> bool:
    if not os.stat(path).st_mode & 0o001:
        return False
    return all(os.stat(parent).st_mode & 0o001 for parent in path.parents)


def _python_version(python: str) -> str:
    out = subprocess.run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


class EnvironmentBuilder:
    def __init__(
        self,
        envs_dir: str | Path,
        images_dir: str | Path,
        python: str | None = None,
        with_cuda: bool = False,
        lab_wheel: Path | None = None,
    ):
        self.with_cuda = with_cuda
        self.lab_wheel = lab_wheel or built_wheel(REPO)
        self.envs_dir = Path(envs_dir)
        self.images_dir = Path(images_dir)
        self.python = python or python_for_all_users()
        self.python_version = _python_version(self.python)
        self._locks: dict[Path, asyncio.Lock] = {}

    def lock_files(self, image: str) -> list[Path]:
        path = self.images_dir / image / LOCK_FILE
        if not path.is_file():
            raise EnvironmentBuildError(f"image {image!r} has no lock file at {path}")
        cuda = self.images_dir / image / CUDA_LOCK_FILE
        return [path, cuda] if self.with_cuda and cuda.is_file() else [path]

    def path_for(self, image: str) -> Path:
        return self.envs_dir / f"{image}-{environment_key(self.lock_files(image), self.python_version)}"

    async def ensure(self, image: str, progress: Callable[[str], None] = lambda line: None) -> Path:
        env = self.path_for(image)
        if (env / READY_MARKER).is_file():
            self._refresh(image, env)
            return env
        lock = self._locks.setdefault(env, asyncio.Lock())
        if lock.locked():
            progress(f"Waiting for the {image} environment that another spawn is building")
        async with lock:
            self.envs_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self.envs_dir, 0o755)  # users' servers must reach their environments
            with open(self.envs_dir / f".{env.name}.lock", "w") as lock_fd:
                await asyncio.to_thread(fcntl.flock, lock_fd, fcntl.LOCK_EX)
                try:
                    if not (env / READY_MARKER).is_file():
                        await self._timed_build(image, env, progress)
                    self._refresh(image, env)
                finally:
                    fcntl.flock(lock_fd, fcntl.LOCK_UN)
        return env

    def _refresh(self, image: str, env: Path) -> None:
        """What a built environment gets from this hub, at every use: the extension, the kernel's name."""
        install_server_extension(env, self.images_dir / image)
        if self.lab_wheel and self.lab_wheel.is_file():
            install_wheel(env, self.lab_wheel)
        else:
            log.warning("the JupyterLab extension is not built (make lab): %s's servers lack it", image)
        name_kernel(env, kernel_display_name(image, discover_images(self.images_dir)))

    async def _timed_build(self, image: str, env: Path, progress: Callable[[str], None]) -> None:
        began = time.perf_counter()
        result = "failed"
        try:
            await self._build(image, env, progress)
            result = "succeeded"
        finally:
            ENVIRONMENT_BUILDS.labels(image, result).inc()
            ENVIRONMENT_BUILD_DURATION.labels(image, result).observe(time.perf_counter() - began)

    async def _build(self, image: str, env: Path, progress: Callable[[str], None]) -> None:
        lock_files = self.lock_files(image)
        log_path = self.envs_dir / f"{env.name}.log"
        started = time.monotonic()
        if env.exists():
            progress(f"Removing an incomplete {image} environment")
            await asyncio.to_thread(shutil.rmtree, env)
        names = " + ".join(f.name for f in lock_files)
        progress(Step(f"Building the {image} environment from {names} (first use; this takes minutes)", 0))
        with open(log_path, "w") as log:
            await self._run([self.python, "-m", "venv", str(env)], log, progress)
            # --no-deps: the lock file already lists every package, pinned;
            # pip must not add or change anything behind it.
            await self._run(
                [
                    str(env / "bin" / "python"),
                    "-m",
                    "pip",
                    "install",
                    "--no-deps",
                    "--disable-pip-version-check",
                    "--progress-bar",
                    "off",
                    *(arg for f in lock_files for arg in ("--requirement", str(f))),
                ],
                log,
                progress,
                PipProgress(requirement_count(lock_files)),
            )
        marker = env / f"{READY_MARKER}.tmp"
        marker.write_text("".join(f"{f}\n" for f in lock_files) + f"python {self.python_version}\n")
        os.replace(marker, env / READY_MARKER)
        progress(Step(f"Built the {image} environment in {time.monotonic() - started:.0f} s", 1))

    async def _run(
        self, cmd: list[str], log, progress: Callable[[str], None], pip: PipProgress | None = None
    ) -> None:
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        tail: list[str] = []
        installing_since = None
        while True:
            try:
                raw = await asyncio.wait_for(proc.stdout.readline(), WAITING_NOTICE_S)
            except TimeoutError:  # the line pip is writing stays in the reader's buffer
                if pip and installing_since is not None:
                    progress(pip.waiting(time.monotonic() - installing_since))
                continue
            if not raw:
                break
            line = raw.decode(errors="replace").rstrip()
            log.write(line + "\n")
            if not line or line.startswith(_NOISE):
                continue
            tail = [*tail, line][-15:]
            step = pip.line(line) if pip else None
            if step:
                progress(step)
            if pip and pip.installing and installing_since is None:
                installing_since = time.monotonic()
        if await proc.wait() != 0:
            log.flush()
            raise EnvironmentBuildError(
                f"building the environment failed ({cmd[2] if len(cmd) > 2 else cmd[0]} exited"
                f" {proc.returncode}); full log: {log.name}\n" + "\n".join(tail)
            )
