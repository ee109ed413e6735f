"""A Docker engine that answers: install Debian's docker.io and start `dockerd` when needed.

    python scripts/docker_engine.py     # exit 0 once `docker info` answers

Used by `make images` (build_images.py --start-engine) and the test suite
(tests/dockerengine.py). Installing goes through scripts/install-system-deps.sh
(root or sudo); a started `dockerd` keeps running afterwards, like the service
it stands in for, and logs to `DOCKERD_LOG` (default
/var/tmp/analysis-hub-tests/dockerd.log).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOCKERD_LOG = Path(os.environ.get("DOCKERD_LOG", "/var/tmp/analysis-hub-tests/dockerd.log"))


def docker_command() -> str:
    """Debian's packaged client: BuildKit without the buildx plugin (a newer client may lack it)."""
    return os.environ.get("DOCKER") or ("/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker")


def engine_answers() -> bool:
    if not shutil.which(docker_command()):
        return False
    return subprocess.run([docker_command(), "info"], capture_output=True).returncode == 0


def ensure_engine(timeout: float = 90) -> None:
    if engine_answers():
        return
    if not shutil.which("dockerd"):
        subprocess.run([str(REPO / "scripts" / "install-system-deps.sh")], check=True)
        if engine_answers():  # the package's service may have started it
            return
    DOCKERD_LOG.parent.mkdir(parents=True, exist_ok=True)
    print(f"starting dockerd (log: {DOCKERD_LOG})", file=sys.stderr)
    with open(DOCKERD_LOG, "a") as log:
        subprocess.Popen(["dockerd"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if engine_answers():
            return
        time.sleep(1)
    raise SystemExit(f"dockerd did not answer within {timeout:.0f} s; see {DOCKERD_LOG}")


if __name__ == "__main__":
    ensure_engine()
