"""The settings file: one YAML document, a typed model, clear errors.

Contract:
- `load_settings(path, environ)` reads the YAML file (or uses the defaults
  when `path` is None), applies `ANALYSIS_HUB_<SECTION>__<KEY>` environment
  overrides, validates, and resolves relative paths against the settings
  file's folder (the working directory when there is no file). It raises
  `SettingsError` naming the file, the key and what is allowed.
- `Settings` is the whole model; every field has a default, so an empty
  file is a working single-machine hub. Each backend's own section is in
  `backend_settings`.
- The file holds no secrets: passwords live in the data directory's
  private `hub/` folder (see `auth`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from .backend_settings import DockerSettings, KubernetesSettings, LocalSettings
from .backends import BACKENDS, backend_for
from .errors import SettingsError
from .teams import checked_team_names
from .validation import DNS_NAME, Section, describe_validation_error, matching

ENV_PREFIX = "ANALYSIS_HUB_"
SETTINGS_PATH_ENV = "ANALYSIS_HUB_SETTINGS"


class HubSettings(Section):
    ip: str = Field("127.0.0.1", description="address the proxy listens on")
    port: int = Field(8000, ge=1, le=65535)
    base_url: str = Field("/", pattern=r"^/([^/].*/)?$", description="path prefix, '/' or '/x/'")
    internal_port: int = Field(8081, ge=1, le=65535, description="the hub's own port (loopback)")
    proxy_api_port: int = Field(8001, ge=1, le=65535, description="the proxy's REST API port (loopback)")
    proxy_command: list[str] = Field(
        ["configurable-http-proxy"], description="the configurable-http-proxy command (npm)"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class OAuthSettings(Section):
    """The hub as an OAuth client of the company's identity provider."""

    client_id: str = Field(min_length=1, description="the hub's client id at the provider")
    client_secret_file: Path | None = Field(
        None, description="file holding the client secret; default: the OAUTH_CLIENT_SECRET variable"
    )
    callback_url: str | None = Field(
        None, description="default: http://<hub.ip>:<hub.port><hub.base_url>hub/oauth_callback"
    )
    allowed_groups: list[str] = Field([], description="provider groups whose members may log in")
    admin_groups: list[str] = Field([], description="provider groups whose members are hub admins")
    refresh_interval: int = Field(
        300, ge=0, description="seconds between re-checks of a user's account at the provider (0: never)"
    )
    logout_url: str | None = Field(None, description="where logout sends the browser (the provider's)")


class OIDCSettings(OAuthSettings):
    """Any OpenID Connect provider: Keycloak, Entra ID, Okta, Google Workspace..."""

    issuer: str = Field(pattern=r"^https?://\S+$", description="the provider's issuer URL")
    authorize_url: str | None = Field(None, description="default: from the issuer's discovery document")
    token_url: str | None = Field(None, description="default: from the issuer's discovery document")
    userinfo_url: str | None = Field(None, description="default: from the issuer's discovery document")
    username_claim: str = "preferred_username"
    groups_claim: str = Field("groups", description="the claim listing the user's groups")
    scopes: list[str] = ["openid", "profile", "email", "groups"]
    display_name: str = Field("company single sign-on", description="shown on the login button")


class GitHubSettings(OAuthSettings):
    """GitHub login; groups are the user's teams as `org:team`."""

    allowed_organizations: list[str] = Field([], description="organizations or `org:team`s that may log in")


class AuthSettings(Section):
    """Who may log in: built-in passwords (the default), OpenID Connect, or GitHub.

    `admins` and `users` name users directly with every login type; with
    `oidc` and `github`, `groups` come from the provider instead.
    """

    type: Literal["builtin", "oidc", "github"] = "builtin"
    admins: list[str] | None = Field(None, description="default: [admin] for builtin, none otherwise")
    users: list[str] = []
    groups: dict[str, list[str]] = Field({}, description="builtin only: hub group -> member user names")
    oidc: OIDCSettings | None = None
    github: GitHubSettings | None = None

    @model_validator(mode="after")
    def _consistent(self):
        if self.admins is None:
            # A user called "admin" at a company's provider must not become an admin by default.
            self.admins = ["admin"] if self.type == "builtin" else []
        if self.type != "builtin":
            if getattr(self, self.type) is None:
                raise ValueError(f"type {self.type!r} needs an auth.{self.type} section (client_id, ...)")
            if self.groups:
                raise ValueError(
                    f"groups: with type {self.type!r} groups come from the provider; remove auth.groups"
                )
        known = set(self.admins) | set(self.users)
        for group, members in self.groups.items():
            unknown = sorted(set(members) - known)
            if unknown:
                raise ValueError(
                    f"groups.{group}: {', '.join(unknown)} not declared in auth.users or auth.admins"
                )
        return self


class CullerSettings(Section):
    enabled: bool = True
    timeout: int = Field(600, ge=1, description="seconds without real activity before a server stops")
    every: int = Field(60, ge=1, description="seconds between culler sweeps (and activity reports)")


class ServersSettings(Section):
    """Several servers per user (JupyterHub's named servers), each from its own profile."""

    max_per_user: int = Field(
        3, ge=1, le=100, description="servers one user may run at once (and named servers they may keep)"
    )
    max_gpu_per_user: int = Field(
        1, ge=0, le=100, description="servers holding GPUs one user may run at once"
    )


class PipelinesSettings(Section):
    """The pipelines service: published notebooks run on schedules (see analysis_hub.pipelines)."""

    enabled: bool = True
    port: int = Field(8002, ge=1, le=65535, description="the service's own port (loopback)")
    data_dir: Path | None = Field(None, description="default: <data_dir>/pipelines")
    database_url: str | None = Field(
        None, description="default: SQLite in data_dir; PostgreSQL on Kubernetes"
    )
    replica: str | None = Field(
        None,
        description="this service replica's name, recorded on the runs it starts; unique among replicas"
        " sharing one database_url; default: the host name (on Kubernetes, the pod's name)",
    )
    max_notebook_mb: int = Field(20, ge=1, le=1024, description="largest notebook that may be published")
    run_as: str | None = Field(
        None,
        description="one Unix user for every team's runs; default: each team's own "
        "('pipelines-<team>') when root, else the hub's",
    )
    public_url: str | None = Field(
        None, description="the hub's URL as users reach it, for links in notifications"
    )
    run_folder_size: str = Field(
        "10Gi",
        pattern=r"^[0-9]+(Ki|Mi|Gi|Ti)$",
        description="kubernetes: the size of the volume each workflow run's steps share (e.g. 10Gi)",
    )
    run_folder_storage_class: str | None = Field(
        None, description="kubernetes: the run folder volume's storage class; none: the cluster's default"
    )
    run_folder_access_mode: Literal["ReadWriteOnce", "ReadWriteMany"] = Field(
        "ReadWriteOnce",
        description="kubernetes: ReadWriteMany when a workflow's parallel steps may run on different nodes",
    )

    @field_validator("run_folder_storage_class")
    @classmethod
    def _storage_class(cls, value):
        return matching(value, *DNS_NAME)


class TeamSettings(Section):
    """A hub group with a team folder at ~/teams/<team> in its members' servers and runs."""

    read_only: bool = Field(False, description="members may read but not write (admins fill it)")


class Settings(Section):
    backend: str = Field("local", description="where servers and runs execute: " + ", ".join(BACKENDS))
    data_dir: Path = Field(Path(".analysis-hub"), description="database, secrets, environments")
    catalog: Path = Field(Path("profiles"), description="folder of profile YAML files")
    images_dir: Path = Field(Path("images"), description="folder of images/<name>/ definitions")
    hub: HubSettings = HubSettings()
    auth: AuthSettings = AuthSettings()
    culler: CullerSettings = CullerSettings()
    servers: ServersSettings = ServersSettings()
    pipelines: PipelinesSettings = PipelinesSettings()
    local: LocalSettings = LocalSettings()
    kubernetes: KubernetesSettings = KubernetesSettings()
    docker: DockerSettings = DockerSettings()
    teams: dict[str, TeamSettings] = Field(
        {}, description="hub groups with a team folder: group -> {read_only: bool}"
    )

    _team_names = field_validator("teams", mode="before")(checked_team_names)

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value):
        if value not in BACKENDS:
            raise ValueError(f"{value!r} is not a backend; one of: {', '.join(BACKENDS)}")
        return value

    @model_validator(mode="after")
    def _backend_checks(self):
        # Each backend checks its own keys (kubernetes: a claim for every team).
        problems = backend_for(self).check(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _callback_reachable(self):
        oauth = getattr(self.auth, self.auth.type, None)
        if oauth is not None and not oauth.callback_url and self.hub.ip in ("0.0.0.0", "::"):
            raise ValueError(
                f"auth.{self.auth.type}.callback_url: required when hub.ip is {self.hub.ip}: the URL"
                " browsers reach the hub at, followed by hub/oauth_callback"
            )
        return self

    @property
    def instance_name(self) -> str:
        """This hub's name on the machine, from its data directory: the parent cgroup of its
        servers and runs, and the prefix of its containers, volumes and networks. Two hubs on
        one machine never clean up each other's."""
        return "analysis-hub-" + hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:8]

    @property
    def gpu_state_file(self) -> Path:
        """The machine's GPU allocations, shared by the hub's spawners and the pipelines service."""
        return self.data_dir / "gpus.json"

    @property
    def hub_state_dir(self) -> Path:
        """Private (0700) folder for the database, cookie secret and passwords."""
        return self.data_dir / "hub"


def load_settings(path: str | Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    if path is None and environ.get(SETTINGS_PATH_ENV):
        path = environ[SETTINGS_PATH_ENV]
    source = str(path) if path else "(built-in defaults)"
    data = _read_yaml(Path(path)) if path else {}
    overrides = env_overrides(environ)
    for dotted, value in overrides.items():
        _set_dotted(data, dotted, value, source)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as e:
        problems = describe_validation_error(e, Settings)
        env_keys = {k.lower() for k in overrides}
        problems = [
            p + (" (set by environment variable)" if p.split(":")[0].lower() in env_keys else "")
            for p in problems
        ]
        raise SettingsError(source, problems) from None
    base = Path(path).resolve().parent if path else Path.cwd()
    return resolve_paths(settings, base)


def resolve_paths(settings: Settings, base: Path) -> Settings:
    """Make every path absolute against `base`; fill the path defaults."""

    def absolute(p: Path) -> Path:
        return p if p.is_absolute() else (base / p).resolve()

    def optional(p: Path | None) -> Path | None:
        return absolute(p) if p else None

    data_dir = absolute(settings.data_dir)
    local = settings.local.model_copy(
        update={
            "envs_dir": optional(settings.local.envs_dir) or data_dir / "envs",
            "homes_dir": optional(settings.local.homes_dir),
        }
    )
    auth = settings.auth
    oauth = getattr(auth, auth.type, None)
    if oauth is not None and oauth.client_secret_file:
        oauth = oauth.model_copy(update={"client_secret_file": absolute(oauth.client_secret_file)})
        auth = auth.model_copy(update={auth.type: oauth})
    proxy = list(settings.hub.proxy_command)
    if "/" in proxy[0]:  # a path rather than a command on PATH
        proxy[0] = str(absolute(Path(proxy[0])))
    pipelines_dir = optional(settings.pipelines.data_dir) or data_dir / "pipelines"
    docker = {
        "image_tags_file": absolute(settings.docker.image_tags_file),
        "hadoop_conf_dir": optional(settings.docker.hadoop_conf_dir),
    }
    return settings.model_copy(
        update={
            "hub": settings.hub.model_copy(update={"proxy_command": proxy}),
            "data_dir": data_dir,
            "auth": auth,
            "pipelines": settings.pipelines.model_copy(update={"data_dir": pipelines_dir}),
            "catalog": absolute(settings.catalog),
            "images_dir": absolute(settings.images_dir),
            "local": local,
            "docker": settings.docker.model_copy(update=docker),
        }
    )


def env_overrides(environ: dict[str, str]) -> dict[str, object]:
    """`ANALYSIS_HUB_CULLER__TIMEOUT=30` -> {"culler.timeout": 30} (values parsed as YAML)."""
    overrides = {}
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX) or key == SETTINGS_PATH_ENV:
            continue
        dotted = key[len(ENV_PREFIX) :].lower().replace("__", ".")
        try:
            overrides[dotted] = yaml.safe_load(raw)
        except yaml.YAMLError:
            overrides[dotted] = raw
    return overrides


def _set_dotted(data: dict, dotted: str, value, source: str) -> None:
    *parents, leaf = dotted.split(".")
    node = data
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise SettingsError(source, [f"{dotted}: cannot set below {part!r}, which is not a section"])
        node = child
    node[leaf] = value


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise SettingsError(str(path), [f"(file): cannot read: {e.strerror}"]) from None
    except yaml.YAMLError as e:
        raise SettingsError(str(path), [f"(file): not valid YAML: {e}".replace("\n", " ")]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(str(path), [f"(top level): expected a mapping, got {type(data).__name__}"])
    return data
