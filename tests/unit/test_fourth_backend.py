"""A new backend is one package plus one line in `backends.BACKENDS`: nothing else is edited.

A fictitious fourth backend (written to a temporary package here, with nothing of its own
anywhere else) is added to the table; the settings accept it, configuration sets its spawner
and asks it for the start timeout and the pipelines URL, `up`'s preflight and preparation ask
it, and the pipelines service runs its executor. Nothing in the package compares the
backend's name, so nothing else needed a change.
"""

from __future__ import annotations

import sys
import textwrap

import pytest
from analysis_hub.backends import BACKENDS, HostFacts
from analysis_hub.cli import preflight
from analysis_hub.config import apply_settings
from analysis_hub.pipelines.__main__ import build, listen_addresses
from analysis_hub.settings import load_settings
from analysis_hub.startup import prepare
from traitlets.config import Config
from unit_support import REPO

WIRING = """
from analysis_hub.backends import Backend


class FourthBackend(Backend):
    name = "fourth"

    def apply(self, settings, c, host):
        c.JupyterHub.spawner_class = "fourth_backend.spawner.FourthSpawner"

    def start_timeout(self, settings):
        return 77

    def prepare(self, settings):
        return settings.model_copy(update={"catalog": settings.catalog})

    def preflight(self, settings, host):
        return ["warning: the fourth backend is fictitious"]

    def pipelines_url(self, settings, prefix):
        return "http://fourth.example" + prefix

    def service_addresses(self, settings):
        return ["127.0.0.9"]

    def executor(self, settings):
        return FourthExecutor()


class FourthExecutor:
    kind = "fourth"


BACKEND = FourthBackend()
"""


@pytest.fixture
def fourth(tmp_path, monkeypatch):
    package = tmp_path / "packages" / "fourth_backend"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "wiring.py").write_text(textwrap.dedent(WIRING))
    monkeypatch.syspath_prepend(str(tmp_path / "packages"))
    monkeypatch.setitem(BACKENDS, "fourth", "fourth_backend.wiring")  # the one line
    yield
    sys.modules.pop("fourth_backend.wiring", None)
    sys.modules.pop("fourth_backend", None)


def settings_file(tmp_path) -> str:
    path = tmp_path / "analysis-hub.yaml"
    path.write_text(
        f"backend: fourth\ndata_dir: {tmp_path / 'data'}\ncatalog: {REPO / 'profiles'}\n"
        f"images_dir: {REPO / 'images'}\n"
    )
    return str(path)


def test_the_hub_is_configured_through_the_new_backend(fourth, tmp_path):
    settings = load_settings(settings_file(tmp_path), environ={})
    settings, credentials = prepare(settings, environ={})
    c = apply_settings(settings, Config(), HostFacts(is_root=False, cgroups_writable=False), credentials)
    assert c.JupyterHub.spawner_class == "fourth_backend.spawner.FourthSpawner"
    assert c.CatalogSpawnerMixin.start_timeout == 77
    assert c.CatalogSpawnerMixin.pipelines_url == "http://fourth.example/services/pipelines/"
    problems = preflight(settings, HostFacts(is_root=False, cgroups_writable=False))
    assert "warning: the fourth backend is fictitious" in problems


def test_the_pipelines_service_runs_the_new_backends_executor(fourth, tmp_path):
    settings = load_settings(settings_file(tmp_path), environ={})
    pipelines = build(settings)
    assert pipelines.executor.kind == "fourth"
    environ = {"ANALYSIS_HUB_SETTINGS_JSON": "{}", "JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:8002"}
    assert listen_addresses(settings, environ) == (["127.0.0.1", "127.0.0.9"], 8002)


def test_an_unlisted_backend_is_refused_naming_the_table(tmp_path):
    from analysis_hub.settings import SettingsError

    with pytest.raises(SettingsError, match="'fourth' is not a backend; one of: local, docker, kubernetes"):
        load_settings(settings_file(tmp_path), environ={})
