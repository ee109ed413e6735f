"""The quick commands import only what they need.

Every `analysis-hub` command once took 3.3 s to start because importing
`analysis_hub.cli` loaded JupyterHub, OAuthenticator and jsonschema, which
only `up` uses. These tests run a command in a fresh interpreter and check
which packages it loaded: a promise about imports, not a timing (the start
times are measured by `make bench`, tests/benchmarks/cli_start.py).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import yaml
from unit_support import IMAGES, PROFILES

# What only `up` (and the hub it starts) needs.
HUB_ONLY = {
    "jupyterhub",
    "oauthenticator",
    "jsonschema",
    "kubespawner",
    "kubernetes",
    "docker",
    "dockerspawner",
}
# What reading a settings file or catalog needs, and talking to the pipelines service.
SETTINGS_ONLY = {"pydantic", "yaml", "sqlalchemy", "tornado", "traitlets"}
HTTP_ONLY = {"requests", "urllib3"}

PROBE = """
import contextlib, io, json, sys
from analysis_hub.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
    try:
        code = main(sys.argv[1:])
    except SystemExit as e:
        code = e.code
modules = sorted({name.split(".")[0] for name in sys.modules})
print(json.dumps({"code": code, "output": out.getvalue(), "modules": modules}))
"""


def run_command(*argv: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, env=os.environ, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_importing_the_cli_loads_no_hub_libraries():
    """`import analysis_hub.cli` loads neither JupyterHub nor OAuthenticator, KubeSpawner or Docker."""
    code = "import json, sys, analysis_hub.cli; print(json.dumps(list(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    loaded = {name.split(".")[0] for name in json.loads(result.stdout)}
    assert "analysis_hub" in loaded
    assert not loaded & (HUB_ONLY | SETTINGS_ONLY | HTTP_ONLY)


def test_help_loads_only_the_argument_parser():
    """`analysis-hub --help` prints every command without loading settings, HTTP or hub libraries."""
    result = run_command("--help")
    assert result["code"] == 0
    assert "profiles" in result["output"] and "pipelines" in result["output"]
    assert not set(result["modules"]) & (HUB_ONLY | SETTINGS_ONLY | HTTP_ONLY)


def test_profiles_list_loads_the_catalog_but_no_hub_libraries(tmp_path):
    """`analysis-hub profiles list` reads settings and catalog (pydantic, YAML) and nothing of the hub."""
    settings = tmp_path / "settings.yaml"
    settings.write_text(
        yaml.safe_dump(
            {"data_dir": str(tmp_path / "data"), "catalog": str(PROFILES), "images_dir": str(IMAGES)}
        )
    )
    result = run_command("profiles", "list", "--config", str(settings))
    assert result["code"] == 0, result["output"]
    assert "pyspark" in result["output"]
    assert not set(result["modules"]) & (HUB_ONLY | HTTP_ONLY)


def test_pipelines_verbs_load_only_the_http_client():
    """`analysis-hub pipelines runs ...` talks HTTP without loading settings, catalog or hub libraries."""
    with socket.socket() as s:  # a port nothing listens on: the verb fails fast, after its imports
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run_command(
        "pipelines", "runs", "data-team/daily", "--url", f"http://127.0.0.1:{port}/", "--token", "x"
    )
    assert result["code"] == 2
    assert result["output"].startswith("analysis-hub pipelines:"), result["output"]
    assert "requests" in result["modules"]
    assert not set(result["modules"]) & (HUB_ONLY | SETTINGS_ONLY)
