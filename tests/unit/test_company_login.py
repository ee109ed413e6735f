"""Company login settings: the model, credentials, OIDC discovery and the traits they become."""

from __future__ import annotations

import json
import os
import stat
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from analysis_hub.cli import main
from analysis_hub.config import HostFacts, apply_settings
from analysis_hub.credentials import Credentials, load_credentials
from analysis_hub.oauth import discover_oidc_endpoints, github_team_groups
from analysis_hub.settings import SettingsError, load_settings
from traitlets.config import Config

HOST = HostFacts(is_root=False, cgroups_writable=False)
OIDC = """\
auth:
  type: oidc
  admins: [ada]
  oidc:
    issuer: https://login.example.com/realms/company
    client_id: analysis-hub
    client_secret_file: secrets/client-secret
    authorize_url: https://login.example.com/auth
    token_url: https://login.example.com/token
    userinfo_url: https://login.example.com/userinfo
    allowed_groups: [data-team, gpu-team]
    admin_groups: [platform-admins]
    refresh_interval: 120
"""


def settings_from(tmp_path: Path, text: str, environ: dict | None = None):
    path = tmp_path / "settings.yaml"
    path.write_text(textwrap.dedent(text))
    return load_settings(path, environ=environ or {})


def problems(tmp_path: Path, text: str) -> str:
    with pytest.raises(SettingsError) as caught:
        settings_from(tmp_path, text)
    return "\n".join(caught.value.problems)


def test_oidc_settings_load_with_paths_resolved_and_no_default_admin(tmp_path):
    """The secret file resolves against the settings file; nobody is an admin by name unless listed."""
    settings = settings_from(tmp_path, OIDC)
    assert settings.auth.oidc.client_secret_file == tmp_path / "secrets" / "client-secret"
    assert settings.auth.admins == ["ada"]
    bare = settings_from(tmp_path, "auth: {type: oidc, oidc: {issuer: 'https://x', client_id: hub}}")
    assert bare.auth.admins == [], "a provider account named 'admin' must not become a hub admin"
    assert settings_from(tmp_path, "").auth.admins == ["admin"], "the built-in login keeps its admin"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("auth: {type: oidc}", "auth: type 'oidc' needs an auth.oidc section"),
        (
            "auth: {type: oidc, groups: {x: [a]}, oidc: {issuer: 'https://x', client_id: hub}}",
            "auth: groups: with type 'oidc' groups come from the provider; remove auth.groups",
        ),
        ("auth: {type: oidc, oidc: {issuer: x, client_id: hub}}", "auth.oidc.issuer: String should match"),
        ("auth: {type: oidc, oidc: {issuer: 'https://x'}}", "auth.oidc.client_id: Field required"),
        ("auth: {type: oidc, oidc: {issuer: 'https://x', client_id: hub, secret: s}}", "auth.oidc.secret"),
        (
            "hub: {ip: 0.0.0.0}\nauth: {type: github, github: {client_id: hub}}",
            "auth.github.callback_url: required when hub.ip is 0.0.0.0",
        ),
    ],
)
def test_bad_login_settings_name_the_key(tmp_path, text, expected):
    """Each mistake is reported with its dotted key and what to do."""
    assert expected in problems(tmp_path, text)


def test_client_secret_from_file_else_environment_else_a_clear_error(tmp_path):
    """The secret comes from the configured file, else $OAUTH_CLIENT_SECRET; without either, start fails."""
    settings = settings_from(tmp_path, OIDC)
    with pytest.raises(SettingsError, match=r"auth.oidc.client_secret_file: cannot read .*client-secret"):
        load_credentials(settings, {})
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "client-secret").write_text("")
    with pytest.raises(SettingsError, match="is empty"):
        load_credentials(settings, {})
    (tmp_path / "secrets" / "client-secret").write_text("from-file\n")
    assert load_credentials(settings, {"OAUTH_CLIENT_SECRET": "env"}).client_secret == "from-file"

    no_file = settings_from(tmp_path, "auth: {type: oidc, oidc: {issuer: 'https://x', client_id: hub}}")
    assert load_credentials(no_file, {"OAUTH_CLIENT_SECRET": "from-env"}).client_secret == "from-env"
    with pytest.raises(SettingsError, match=r"no client secret; point auth.oidc.client_secret_file .*OAUTH"):
        load_credentials(no_file, {})
    assert load_credentials(settings_from(tmp_path, ""), {}) == Credentials(), "built-in login needs none"


def test_auth_state_key_is_created_once_private_and_the_environment_wins(tmp_path):
    """The key encrypting users' tokens is made once (0600) and reused, so sessions survive restarts."""
    settings = settings_from(tmp_path, OIDC.replace("client_secret_file: secrets/client-secret", ""))
    env = {"OAUTH_CLIENT_SECRET": "s"}
    first = load_credentials(settings, env).auth_state_key
    assert len(bytes.fromhex(first)) == 32
    key_file = settings.hub_state_dir / "auth_state_key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert load_credentials(settings, env).auth_state_key == first
    assert load_credentials(settings, {**env, "JUPYTERHUB_CRYPT_KEY": "ab" * 32}).auth_state_key == "ab" * 32


def test_oidc_settings_become_oauthenticator_traits(tmp_path):
    """Endpoints, client, groups from the claim, admin groups, encrypted auth state and refresh interval."""
    settings = settings_from(tmp_path, OIDC)
    c = apply_settings(settings, Config(), HOST, Credentials(client_secret="s3", auth_state_key="cd" * 32))
    assert c.JupyterHub.authenticator_class == "analysis_hub.oauth.OIDCAuthenticator"
    a = c.OIDCAuthenticator
    assert (a.client_id, a.client_secret) == ("analysis-hub", "s3")
    assert a.oauth_callback_url == "http://127.0.0.1:8000/hub/oauth_callback"
    assert (a.authorize_url, a.token_url, a.userdata_url) == (
        "https://login.example.com/auth",
        "https://login.example.com/token",
        "https://login.example.com/userinfo",
    )
    assert a.username_claim == "preferred_username"
    assert a.scope == ["openid", "profile", "email", "groups"]
    assert a.manage_groups is True and a.auth_state_groups_key == "oauth_user.groups"
    assert a.allowed_groups == {"data-team", "gpu-team"} and a.admin_groups == {"platform-admins"}
    assert a.enable_auth_state is True and a.auth_refresh_age == 120
    assert c.CryptKeeper["keys"] == [bytes.fromhex("cd" * 32)]
    assert c.Authenticator.admin_users == {"ada"}
    assert "load_groups" not in c.JupyterHub, "groups come from the provider, not the settings"
    assert c.Spawner.args == ["--HubOAuth.cache_max_age=120"]


def test_github_settings_map_teams_to_groups(tmp_path):
    """GitHub login: organizations allowed, teams read with read:org and turned into `org:team` groups."""
    settings = settings_from(
        tmp_path,
        """\
        auth:
          type: github
          github: {client_id: gh, allowed_organizations: [acme], admin_groups: ["acme:platform"]}
        """,
    )
    c = apply_settings(settings, Config(), HOST, Credentials(client_secret="s", auth_state_key="ef" * 32))
    a = c.GitHubAuthenticator
    assert c.JupyterHub.authenticator_class == "analysis_hub.oauth.GitHubAuthenticator"
    assert a.allowed_organizations == {"acme"} and a.admin_groups == {"acme:platform"}
    assert a.scope == ["read:org"] and a.populate_teams_in_auth_state is True
    assert a.auth_state_groups_key is github_team_groups
    teams = [{"organization": {"login": "acme"}, "slug": "data-team"}]
    assert github_team_groups({"teams": teams}) == ["acme:data-team"]
    assert github_team_groups({}) == []


class _Discovery(BaseHTTPRequestHandler):
    document: dict = {}

    def do_GET(self):
        found = self.path == "/realm/.well-known/openid-configuration"
        body = json.dumps(self.document).encode()
        self.send_response(200 if found else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body if found else b"{}")

    def log_message(self, *args):
        pass


@pytest.fixture
def issuer():
    server = HTTPServer(("127.0.0.1", 0), _Discovery)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/realm"
    server.shutdown()


def test_oidc_endpoints_come_from_the_issuers_discovery_document(tmp_path, issuer):
    """Unset endpoints are read from <issuer>/.well-known/openid-configuration (served over real HTTP)."""
    _Discovery.document = {
        "authorization_endpoint": f"{issuer}/auth",
        "token_endpoint": f"{issuer}/token",
        "userinfo_endpoint": f"{issuer}/me",
    }
    settings = settings_from(tmp_path, f"auth: {{type: oidc, oidc: {{issuer: '{issuer}', client_id: hub}}}}")
    oidc = discover_oidc_endpoints(settings).auth.oidc
    assert (oidc.authorize_url, oidc.token_url, oidc.userinfo_url) == (
        f"{issuer}/auth",
        f"{issuer}/token",
        f"{issuer}/me",
    )
    _Discovery.document = {"authorization_endpoint": f"{issuer}/auth"}
    with pytest.raises(SettingsError, match=r"no token_endpoint, userinfo_endpoint; set them in auth\.oidc"):
        discover_oidc_endpoints(settings)
    wrong = settings_from(tmp_path, f"auth: {{type: oidc, oidc: {{issuer: '{issuer}/x', client_id: hub}}}}")
    with pytest.raises(SettingsError, match=r"auth.oidc.issuer: cannot read .*/x/.well-known"):
        discover_oidc_endpoints(wrong)


def test_set_password_is_refused_with_a_company_login(tmp_path, capsys):
    """`users set-password` says passwords live at the provider when the login is OIDC."""
    path = tmp_path / "settings.yaml"
    path.write_text(textwrap.dedent(OIDC))
    assert main(["users", "set-password", "ada", "--config", str(path)]) == 2
    assert "auth.type is oidc: passwords live at the identity provider" in capsys.readouterr().err
