"""A real Docker engine and the curated images, for tests/images and the docker backend's tests.

`ensure_engine()` (scripts/docker_engine.py) makes sure an engine answers: it
installs Debian's docker.io when missing and starts `dockerd` when none runs.
`build_images(*names)` builds the images with scripts/build_images.py (the
base from debootstrap once; content tags make later calls no-ops) and returns
image name -> tag. The machine's CA bundle is passed in, for networks whose
TLS is re-signed. `remove_hub_objects(running)` removes what a test hub
left on the engine and host. `ANALYSIS_HUB_TEST_TORCH=cpu` builds pytorch without CUDA
from the wheelhouse in `ANALYSIS_HUB_TEST_WHEELHOUSE` (default /opt/wheels).
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEST_ROOT = Path(os.environ.get("ANALYSIS_HUB_TEST_ROOT", "/var/tmp/analysis-hub-tests"))
TAGS_FILE = TEST_ROOT / "image-tags.json"

sys.path.insert(0, str(REPO / "scripts"))

from docker_engine import docker_command, ensure_engine  # noqa: E402  (scripts/ is not a package)


def docker(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    result = subprocess.run([docker_command(), *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"docker {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}"
        )
    return result


def ca_bundle() -> str | None:
    path = ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt"
    return path if Path(path).is_file() else None


def build_images(*names: str) -> dict[str, str]:
    """Build (or find up to date) the named images; returns image name -> tag."""
    ensure_engine()
    command = [sys.executable, str(REPO / "scripts" / "build_images.py"), *names]
    command += ["--base", "debootstrap", "--tags-file", str(TAGS_FILE), "--start-engine"]
    if ca_bundle():
        command += ["--ca-bundle", ca_bundle()]
    if os.environ.get("ANALYSIS_HUB_TEST_TORCH") == "cpu":
        command += [
            "--no-cuda",
            "--wheelhouse",
            os.environ.get("ANALYSIS_HUB_TEST_WHEELHOUSE", "/opt/wheels"),
        ]
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"building images {names} failed:\n{result.stderr[-6000:]}")
    print(f"images {names or 'all'} ready in {time.monotonic() - started:.0f} s", file=sys.stderr)
    tags = json.loads(TAGS_FILE.read_text())
    return {name: tags[name] for name in (names or tags)}


def hub_prefix(running) -> str:
    """The names of a running test hub's containers, volumes and network begin with this."""
    from analysis_hub.settings import load_settings

    return load_settings(running.settings_path, environ={}).instance_name


def remove_hub_objects(running) -> None:
    """A stopped test hub's containers, home volumes, network and iptables chain."""
    import docker as docker_sdk

    prefix = hub_prefix(running)
    containers = docker("ps", "-aq", "--filter", f"name={prefix}-", check=False).stdout.split()
    if containers:
        docker("rm", "--force", *containers, check=False)
    volumes = docker("volume", "ls", "-q", "--filter", f"name={prefix}-", check=False).stdout.split()
    if volumes:
        docker("volume", "rm", "--force", *volumes, check=False)
    remove_container_network(docker_sdk.APIClient(version="auto"), prefix)


def remove_container_network(client, name_prefix: str) -> None:
    """Undo `network.ensure_container_network` (the hub itself never does): the INPUT hooks, the
    chain, the network. The network must have no containers left."""
    import contextlib

    import docker.errors
    from analysis_hub.backends.docker.translate import container_network

    network = container_network(name_prefix)

    def iptables(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["iptables", "-w", *args], capture_output=True, text=True, check=check)

    for hook in (line.split()[2:] for line in iptables("-S", "INPUT").stdout.splitlines()):
        if hook[-2:] == ["-j", network.chain]:
            iptables("-D", "INPUT", *hook)
    if iptables("-S", network.chain, check=False).returncode == 0:
        iptables("-F", network.chain)
        iptables("-X", network.chain)
    with contextlib.suppress(docker.errors.NotFound):
        client.remove_network(network.name)
