"""The JupyterLab extension (lab-extension/, "Publish as pipeline…") in a local environment.

Contract:
- `built_wheel(repo)` is the wheel `make lab` built
  (`lab-extension/dist/analysis_hub_lab-*.whl`), the same file the images
  install, or None when it was not built.
- `install_wheel(env, wheel)` lays the wheel out in the environment as pip
  would (the package in site-packages; its data, the prebuilt labextension
  and the server-extension config, under the environment's prefix), and
  records what it wrote with the wheel's digest in `LAB_MARKER`. An
  environment already holding this wheel is left untouched; a different one
  replaces the files of the last, so stale chunks never linger. Pure file
  work: no pip, no node. Returns whether anything changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
from pathlib import Path

LAB_MARKER = ".analysis-hub-lab.json"
WHEEL_GLOB = "analysis_hub_lab-*-py3-none-any.whl"


def built_wheel(repo: Path) -> Path | None:
    wheels = sorted((repo / "lab-extension" / "dist").glob(WHEEL_GLOB))
    return wheels[-1] if wheels else None


def install_wheel(env: Path, wheel: Path) -> bool:
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    marker = env / LAB_MARKER
    previous = json.loads(marker.read_text()) if marker.is_file() else {}
    if previous.get("sha256") == digest:
        return False
    site_packages = next((env / "lib").glob("python3*/site-packages"))
    for relative in previous.get("files", []):
        (env / relative).unlink(missing_ok=True)
    written = []
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.infolist():
            if member.is_dir() or ".dist-info/" in member.filename:
                continue
            target = _target(env, site_packages, member.filename)
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as source, open(target, "wb") as out:
                shutil.copyfileobj(source, out)
            written.append(target.relative_to(env).as_posix())
    temporary = marker.with_suffix(".tmp")
    temporary.write_text(json.dumps({"wheel": wheel.name, "sha256": digest, "files": written}, indent=1))
    os.replace(temporary, marker)
    return True


def _target(env: Path, site_packages: Path, name: str) -> Path:
    """Where pip puts a wheel member: `<pkg>.data/data/x` under the prefix, the rest in site-packages."""
    head, _, rest = name.partition("/")
    if head.endswith(".data"):
        scheme, _, path = rest.partition("/")
        if scheme != "data":
            raise ValueError(f"{name}: only .data/data/ members are expected in the lab extension's wheel")
        target = env / path
    else:
        target = site_packages / name
    if ".." in Path(name).parts:
        raise ValueError(f"{name}: a path outside the environment")
    return target
