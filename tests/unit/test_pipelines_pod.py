"""The pipelines service as the chart's Deployment starts it: settings, address, OAuth client, probe.

The pod's environment and mounted files come from the chart rendered by the
real Helm engine; the Secrets' values, which a cluster would inject, are
stand-ins given here. The settings loader, JupyterHub's HubOAuth and the
service's web application are the real ones; the readiness probe is served
by the real application over a real socket on 127.0.0.1, against a real
SQLite database (the PostgreSQL runs are the pipelines tests' part).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from analysis_hub.config import PIPELINES_ACCESS, pipelines_oauth
from analysis_hub.pipelines.__main__ import SETTINGS_ENV, listen_addresses, service_settings
from analysis_hub.pipelines.store.models import open_database
from analysis_hub.pipelines.web.app import make_app
from analysis_hub.settings import Settings
from jupyterhub.services.auth import HubOAuth
from kube_support import find, render_chart
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

SECRETS = {
    ("analysis-hub-pipelines-database", "url"): "postgresql://pipelines:pw@db.example.com:5432/pipelines",
    ("hub", "hub.services.pipelines.apiToken"): "generated-by-z2jh",
}


def service_pod() -> tuple[list[dict], dict, dict]:
    manifests = render_chart()
    pod = find(manifests, "Deployment", "analysis-hub-pipelines")["spec"]["template"]["spec"]
    [container] = pod["containers"]
    return manifests, pod, container


def pod_environment(tmp_path: Path) -> tuple[dict[str, str], dict]:
    """The container's environment, its ConfigMap mounts written under tmp_path (paths moved there)."""
    manifests, pod, container = service_pod()
    volumes = {v["name"]: v for v in pod["volumes"]}
    moved = {}
    for mount in container["volumeMounts"]:
        config_map = volumes[mount["name"]].get("configMap")
        if config_map is None:
            continue
        folder = tmp_path / mount["name"]
        folder.mkdir()
        data = find(manifests, "ConfigMap", config_map["name"])["data"]
        keys = [item["key"] for item in config_map.get("items", [])] or list(data)
        for key in keys:
            (folder / key).write_text(data[key])
        moved[mount["mountPath"]] = str(folder)
    environ = {}
    for variable in container["env"]:
        if "value" in variable:
            value = variable["value"]
            for mount_path, folder in moved.items():
                value = value.replace(mount_path, folder)
            environ[variable["name"]] = value
        else:
            ref = variable["valueFrom"]["secretKeyRef"]
            environ[variable["name"]] = SECRETS[(ref["name"], ref["key"])]
    return environ, container


def test_the_service_pod_reads_the_hubs_settings_file_with_its_database_from_the_secret(tmp_path):
    """Started by the chart (no $ANALYSIS_HUB_SETTINGS_JSON), the service reads the settings file
    the hub reads, with the database URL from its Secret and the mounted catalog, keeps its state
    on its volume, and listens on every interface of the pod at the port its Service targets."""
    environ, container = pod_environment(tmp_path)
    settings = service_settings(environ)
    assert settings.backend == "kubernetes" and settings.pipelines.enabled
    assert settings.pipelines.database_url == SECRETS[("analysis-hub-pipelines-database", "url")]
    assert settings.catalog == tmp_path / "catalog"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert settings.pipelines.data_dir.parent == Path(mounts["state"])
    [port] = container["ports"]
    assert listen_addresses(settings, environ) == (["0.0.0.0"], port["containerPort"])


def test_one_machine_keeps_the_hub_managed_service_on_loopback():
    """Started by the hub, the service still takes the hub's resolved settings as given and the
    loopback URL the hub chose."""
    settings = Settings.model_validate({"pipelines": {"port": 9102}})
    environ = {SETTINGS_ENV: settings.model_dump_json(), "JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:9102"}
    assert service_settings(environ) == settings
    assert listen_addresses(settings, environ) == (["127.0.0.1"], 9102)
    # On docker also on the bridge's gateway: servers in containers publish from JupyterLab.
    on_docker = Settings.model_validate(
        {"backend": "docker", "pipelines": {"port": 9102}, "docker": {"network_subnet": "10.200.0.0/24"}}
    )
    environ[SETTINGS_ENV] = on_docker.model_dump_json()
    assert listen_addresses(on_docker, environ) == (["127.0.0.1", "10.200.0.1"], 9102)


def test_the_service_pods_hub_oauth_is_the_client_the_hub_registers(tmp_path, monkeypatch):
    """JupyterHub's own HubOAuth, built from the pod's environment, is the OAuth client the hub
    registers for the service (client id, callback, access scope), talks to z2jh's hub Service,
    and holds the token z2jh generated."""
    environ, _ = pod_environment(tmp_path)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    auth = HubOAuth()
    registered = pipelines_oauth("/")
    assert (auth.oauth_client_id, auth.oauth_redirect_uri) == (
        registered["oauth_client_id"],
        registered["oauth_redirect_uri"],
    )
    assert auth.access_scopes == {PIPELINES_ACCESS}
    assert auth.api_url == "http://hub:8081/hub/api"
    assert auth.api_token == SECRETS[("hub", "hub.services.pipelines.apiToken")]


async def answer(app, path: str) -> tuple[int, dict]:
    sock, port = bind_unused_port()
    server = HTTPServer(app)
    server.add_sockets([sock])
    try:
        response = await AsyncHTTPClient().fetch(f"http://127.0.0.1:{port}{path}", raise_error=False)
    finally:
        server.stop()
    return response.code, json.loads(response.body)


@pytest.mark.parametrize("database", ["answers", "is gone"])
async def test_the_readiness_probe_says_whether_the_database_answers(tmp_path, database):
    """The chart's readiness probe path, unauthenticated, answers 200 while the database answers
    SELECT 1 and 503 when it can't be reached, saying nothing about why (no URL, no path).
    The service's own state is a stand-in holding only its database (the probe reads nothing else)."""
    if database == "answers":
        sessions = open_database(f"sqlite:///{tmp_path / 'pipelines.sqlite'}")
    else:
        sessions = sessionmaker(create_engine(f"sqlite:///{tmp_path / 'no' / 'such' / 'folder.sqlite'}"))
    _, _, container = service_pod()
    prefix = next(e["value"] for e in container["env"] if e["name"] == "JUPYTERHUB_SERVICE_PREFIX")
    app = make_app(SimpleNamespace(sessions=sessions), prefix, 2**20)
    code, body = await answer(app, container["readinessProbe"]["httpGet"]["path"])
    if database == "answers":
        assert (code, body) == (200, {"status": "ok"})
    else:
        assert (code, body) == (503, {"status": "unavailable"})
