"""The settings file: one YAML document, a typed model, clear errors.

Contract:
- `load_settings(path, environ)` reads the YAML file (or uses the defaults
  when `path` is None), applies `ANALYSIS_HUB_<SECTION>__<KEY>` environment
  overrides, validates, and resolves relative paths against the settings
  file's folder (the working directory when there is no file). It raises
  `SettingsError` naming the file, the key and what is allowed.
- `Settings` is the whole model; every field has a default, so an empty
  file is a working single-machine hub.
- The file holds no secrets: passwords live in the data directory's
  private `hub/` folder (see `auth`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .validation import describe_validation_error

ENV_PREFIX = "ANALYSIS_HUB_"
SETTINGS_PATH_ENV = "ANALYSIS_HUB_SETTINGS"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HubSettings(_Section):
    ip: str = Field("127.0.0.1", description="address the proxy listens on")
    port: int = Field(8000, ge=1, le=65535)
    base_url: str = Field("/", pattern=r"^/([^/].*/)?$", description="path prefix, '/' or '/x/'")
    internal_port: int = Field(8081, ge=1, le=65535, description="the hub's own port (loopback)")
    proxy_api_port: int = Field(8001, ge=1, le=65535, description="the proxy's REST API port (loopback)")
    proxy_command: list[str] = Field(
        ["configurable-http-proxy"], description="the configurable-http-proxy command (npm)"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class AuthSettings(_Section):
    """The built-in login: users declared here, passwords kept in the data dir."""

    type: Literal["builtin"] = "builtin"
    admins: list[str] = ["admin"]
    users: list[str] = []
    groups: dict[str, list[str]] = Field({}, description="hub group -> member user names")

    @model_validator(mode="after")
    def _members_are_declared(self):
        known = set(self.admins) | set(self.users)
        for group, members in self.groups.items():
            unknown = sorted(set(members) - known)
            if unknown:
                raise ValueError(
                    f"groups.{group}: {', '.join(unknown)} not declared in auth.users or auth.admins"
                )
        return self


class CullerSettings(_Section):
    enabled: bool = True
    timeout: int = Field(600, ge=1, description="seconds without real activity before a server stops")
    every: int = Field(60, ge=1, description="seconds between culler sweeps (and activity reports)")


class LocalSettings(_Section):
    """The local backend: a Python environment per image, a Unix user per hub user."""

    envs_dir: Path | None = Field(None, description="default: <data_dir>/envs")
    homes_dir: Path | None = Field(
        None, description="default: /home when the hub runs as root, else <data_dir>/homes"
    )
    python: str | None = Field(
        None,
        description="interpreter for environments; default: the hub's, or a system one all users can run",
    )
    isolation: Literal["auto", "unix-users", "none"] = Field(
        "auto", description="auto: a Unix user per hub user when the hub runs as root"
    )
    cgroups: Literal["auto", "required", "off"] = Field(
        "auto", description="enforce profile CPU/memory limits with cgroups where writable"
    )

    @field_validator("cgroups", mode="before")
    @classmethod
    def _yaml_off(cls, value):
        # YAML 1.1 reads a bare `off` as false; the admin meant "off".
        return "off" if value is False else value

    start_timeout: int = Field(
        1800, ge=30, description="seconds a spawn may take, a first environment build included"
    )


class Settings(_Section):
    backend: Literal["local"] = "local"
    data_dir: Path = Field(Path(".analysis-hub"), description="database, secrets, environments")
    catalog: Path = Field(Path("profiles"), description="folder of profile YAML files")
    images_dir: Path = Field(Path("images"), description="folder of images/<name>/ definitions")
    hub: HubSettings = HubSettings()
    auth: AuthSettings = AuthSettings()
    culler: CullerSettings = CullerSettings()
    local: LocalSettings = LocalSettings()

    @property
    def hub_state_dir(self) -> Path:
        """Private (0700) folder for the database, cookie secret and passwords."""
        return self.data_dir / "hub"


class SettingsError(ValueError):
    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"invalid settings in {source}:\n  " + "\n  ".join(problems))


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

    data_dir = absolute(settings.data_dir)
    local = settings.local.model_copy(
        update={
            "envs_dir": absolute(settings.local.envs_dir) if settings.local.envs_dir else data_dir / "envs",
            "homes_dir": absolute(settings.local.homes_dir) if settings.local.homes_dir else None,
        }
    )
    proxy = list(settings.hub.proxy_command)
    if "/" in proxy[0]:  # a path rather than a command on PATH
        proxy[0] = str(absolute(Path(proxy[0])))
    return settings.model_copy(
        update={
            "hub": settings.hub.model_copy(update={"proxy_command": proxy}),
            "data_dir": data_dir,
            "catalog": absolute(settings.catalog),
            "images_dir": absolute(settings.images_dir),
            "local": local,
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
