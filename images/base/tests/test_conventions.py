"""In-image smoke test, run inside every image by tests/images: the docker-stacks conventions.

Promises: the server runs as jovyan (uid 1000, gid 100) with home /home/jovyan,
under tini as PID 1 (after the start hooks); the hub's activity-policy
extension and the kernel-culling policy are installed and enabled in the
image's Jupyter configuration (loaded and valid where EXPECT_JUPYTER=1: the
base has no Jupyter of its own); where EXPECT_JUPYTER=1, the JupyterLab
extension ("Publish as pipeline…", lab-extension/) is installed prebuilt and
enabled, with its server extension. Exit status 0 when every check passes.
"""

import json
import os
import pwd
import re
import shutil
import subprocess
import sys
from pathlib import Path

VENV = Path(sys.prefix)


def check_user():
    assert os.getuid() == 1000, f"running as uid {os.getuid()}, not 1000"
    assert os.getgid() == 100, f"running as gid {os.getgid()}, not 100"
    entry = pwd.getpwuid(1000)
    assert (entry.pw_name, entry.pw_dir) == ("jovyan", "/home/jovyan"), entry
    assert os.environ["HOME"] == "/home/jovyan"
    assert os.access("/home/jovyan", os.W_OK), "home is not writable"
    assert not os.access(VENV / "bin", os.W_OK), "the image's environment must not be writable by users"


def check_init():
    assert Path("/proc/1/comm").read_text().strip() == "tini", "PID 1 is not tini"
    for hooks in ("/usr/local/bin/start-notebook.d", "/usr/local/bin/before-notebook.d"):
        assert Path(hooks).is_dir(), f"{hooks} missing"


def check_jupyter_policy():
    config_dir = VENV / "etc/jupyter/jupyter_server_config.d"
    enabled = json.loads((config_dir / "analysis_hub_activity.json").read_text())
    assert enabled["ServerApp"]["jpserver_extensions"]["analysis_hub_activity"] is True
    server_config = json.loads((VENV / "etc/jupyter/jupyter_server_config.json").read_text())
    culling = server_config["MappingKernelManager"]
    assert culling["cull_busy"] is False, "busy kernels count as activity; they must not be culled"
    if os.environ.get("EXPECT_JUPYTER") != "1":
        return
    assert shutil.which("jupyterhub-singleuser"), "jupyterhub-singleuser is not on PATH"
    listed = subprocess.run(
        [VENV / "bin/jupyter", "server", "extension", "list"], capture_output=True, text=True, check=True
    )
    output = re.sub(r"\x1b\[[0-9;]*m", "", listed.stdout + listed.stderr)  # no colours
    assert "analysis_hub_activity enabled" in output, output
    assert re.search(r"analysis_hub_activity\s+OK", output), output
    # What the server really reads: the kernel culler's settings reach it (config.d would not).
    shown = subprocess.run(
        [VENV / "bin/jupyter-server", "--show-config"], capture_output=True, text=True, check=True
    )
    assert re.search(r"\.cull_idle_timeout = 3600", shown.stdout + shown.stderr), shown.stdout
    check_lab_extension()


def check_lab_extension():
    def listing(*command):
        listed = subprocess.run([VENV / "bin/jupyter", *command], capture_output=True, text=True, check=True)
        return re.sub(r"\x1b\[[0-9;]*m", "", listed.stdout + listed.stderr)

    servers = listing("server", "extension", "list")
    assert re.search(r"analysis_hub_lab\s+OK", servers), servers
    labs = listing("labextension", "list")
    assert re.search(r"analysis-hub-lab v\S+ enabled\s+OK", labs), labs


if __name__ == "__main__":
    check_user()
    check_init()
    check_jupyter_policy()
    print(json.dumps({"conventions": "ok", "python": sys.version.split()[0]}))
