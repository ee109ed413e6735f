"""load_settings: defaults, relative paths, environment overrides, and errors naming file and key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from analysis_hub.settings import SettingsError, env_overrides, load_settings
from unit_support import REPO


def write(tmp_path: Path, text: str, name: str = "settings.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def error_of(path, environ=None) -> SettingsError:
    with pytest.raises(SettingsError) as caught:
        load_settings(path, environ={} if environ is None else environ)
    return caught.value


def test_defaults_without_a_file(tmp_path, monkeypatch):
    """With no file every setting has its default and paths resolve against the working directory."""
    monkeypatch.chdir(tmp_path)
    settings = load_settings(None, environ={})
    assert settings.backend == "local"
    assert (settings.hub.ip, settings.hub.port, settings.hub.base_url) == ("127.0.0.1", 8000, "/")
    assert settings.auth.admins == ["admin"] and settings.auth.users == [] and settings.auth.groups == {}
    assert (settings.culler.enabled, settings.culler.timeout, settings.culler.every) == (True, 600, 60)
    assert (settings.local.isolation, settings.local.cgroups) == ("auto", "auto")
    assert settings.data_dir == tmp_path / ".analysis-hub"
    assert settings.catalog == tmp_path / "profiles"
    assert settings.images_dir == tmp_path / "images"
    assert settings.local.envs_dir == tmp_path / ".analysis-hub" / "envs"
    assert settings.local.homes_dir is None
    assert settings.hub_state_dir == tmp_path / ".analysis-hub" / "hub"
    assert settings.hub.proxy_command == ["configurable-http-proxy"]


def test_empty_file_is_all_defaults(tmp_path):
    """An empty settings file is a working configuration with the defaults."""
    settings = load_settings(write(tmp_path, ""), environ={})
    assert settings.hub.port == 8000 and settings.culler.timeout == 600


def test_relative_paths_resolve_against_the_file(tmp_path, monkeypatch):
    """Relative paths are relative to the settings file's folder, not the working directory."""
    conf = tmp_path / "conf"
    conf.mkdir()
    path = write(
        conf,
        """\
        data_dir: state
        catalog: ../catalog
        images_dir: /opt/images
        hub: {proxy_command: [bin/chp, --log-level, debug]}
        local: {homes_dir: homes, envs_dir: /srv/envs}
        """,
    )
    monkeypatch.chdir(REPO)
    settings = load_settings(path, environ={})
    assert settings.data_dir == conf / "state"
    assert settings.catalog == tmp_path / "catalog"
    assert settings.images_dir == Path("/opt/images")
    assert settings.local.homes_dir == conf / "homes"
    assert settings.local.envs_dir == Path("/srv/envs")
    assert settings.hub.proxy_command == [str(conf / "bin" / "chp"), "--log-level", "debug"]


def test_envs_dir_defaults_under_data_dir(tmp_path):
    """Without local.envs_dir, environments live in <data_dir>/envs."""
    settings = load_settings(write(tmp_path, "data_dir: /var/lib/ah\n"), environ={})
    assert settings.local.envs_dir == Path("/var/lib/ah/envs")


def test_repo_settings_file_loads():
    """The checked-in analysis-hub.yaml is valid."""
    settings = load_settings(REPO / "analysis-hub.yaml", environ={})
    assert settings.auth.groups == {"data-team": ["alice"], "gpu-team": ["bob"]}
    assert settings.data_dir == REPO / ".analysis-hub"


def test_environment_overrides(tmp_path):
    """ANALYSIS_HUB_<SECTION>__<KEY> variables override the file, values parsed as YAML."""
    path = write(tmp_path, "culler: {timeout: 600}\nhub: {port: 8000}\n")
    environ = {
        "ANALYSIS_HUB_CULLER__TIMEOUT": "30",
        "ANALYSIS_HUB_HUB__PORT": "9001",
        "ANALYSIS_HUB_CULLER__ENABLED": "false",
        "ANALYSIS_HUB_AUTH__USERS": "[alice, bob]",
        "ANALYSIS_HUB_DATA_DIR": "elsewhere",
        "OTHER_VARIABLE": "ignored",
    }
    settings = load_settings(path, environ=environ)
    assert settings.culler.timeout == 30
    assert settings.hub.port == 9001
    assert settings.culler.enabled is False
    assert settings.auth.users == ["alice", "bob"]
    assert settings.data_dir == tmp_path / "elsewhere"


def test_settings_path_from_environment(tmp_path):
    """ANALYSIS_HUB_SETTINGS names the file when no path is given, and is not itself an override."""
    path = write(tmp_path, "hub: {port: 8123}\n")
    settings = load_settings(None, environ={"ANALYSIS_HUB_SETTINGS": str(path)})
    assert settings.hub.port == 8123
    assert env_overrides({"ANALYSIS_HUB_SETTINGS": str(path)}) == {}


def test_env_overrides_parsing():
    """env_overrides turns variable names into dotted keys and parses values as YAML."""
    assert env_overrides(
        {"ANALYSIS_HUB_CULLER__TIMEOUT": "30", "ANALYSIS_HUB_HUB__IP": "0.0.0.0", "HOME": "/"}
    ) == {
        "culler.timeout": 30,
        "hub.ip": "0.0.0.0",
    }


def test_unknown_key(tmp_path):
    """An unknown key is reported with the file, the dotted key and the allowed keys."""
    path = write(tmp_path, "culler: {timeout: 60, intervall: 5}\n")
    error = error_of(path)
    assert error.source == str(path)
    assert error.problems == ["culler.intervall: unknown key (allowed: enabled, every, timeout)"]
    assert str(path) in str(error) and "culler.intervall" in str(error)


def test_unknown_top_level_section(tmp_path):
    """An unknown section is reported with the sections allowed."""
    [problem] = error_of(write(tmp_path, "k8s: {}\n")).problems
    assert problem.startswith("k8s: unknown key (allowed: auth, backend, catalog, culler, data_dir,")


def test_wrong_type(tmp_path):
    """A value of the wrong type is reported with its key and the value given."""
    [problem] = error_of(write(tmp_path, "hub: {port: eighty}\n")).problems
    assert (
        problem
        == "hub.port: Input should be a valid integer, unable to parse string as an integer (got 'eighty')"
    )


def test_out_of_range(tmp_path):
    """A number outside its range is reported with its key."""
    [problem] = error_of(write(tmp_path, "culler: {timeout: 0}\n")).problems
    assert problem.startswith("culler.timeout: Input should be greater than or equal to 1")


@pytest.mark.parametrize(
    ("text", "key", "allowed"),
    [
        ("local: {isolation: docker}\n", "local.isolation", "'auto', 'unix-users' or 'none'"),
        ("local: {cgroups: yes-please}\n", "local.cgroups", "'auto', 'required' or 'off'"),
        ("hub: {log_level: TRACE}\n", "hub.log_level", "'DEBUG', 'INFO', 'WARNING' or 'ERROR'"),
    ],
)
def test_bad_choice_value(tmp_path, text, key, allowed):
    """A value outside a fixed set (backend, isolation, ...) is reported with the allowed values."""
    [problem] = error_of(write(tmp_path, text)).problems
    assert problem.startswith(f"{key}: Input should be {allowed}")


def test_an_unknown_backend_names_the_backends_of_the_table(tmp_path):
    """`backend` is one of `backends.BACKENDS` (the one table), and the error lists them."""
    [problem] = error_of(write(tmp_path, "backend: podman\n")).problems
    assert problem == "backend: 'podman' is not a backend; one of: local, docker, kubernetes"


def test_bad_base_url(tmp_path):
    """A base_url without its slashes is refused."""
    [problem] = error_of(write(tmp_path, "hub: {base_url: hub}\n")).problems
    assert problem.startswith("hub.base_url: String should match pattern")


def test_group_member_not_declared(tmp_path):
    """A group member who is not a declared user or admin is reported by name."""
    path = write(tmp_path, "auth: {users: [alice], groups: {team: [alice, carol]}}\n")
    assert error_of(path).problems == ["auth: groups.team: carol not declared in auth.users or auth.admins"]


def test_several_problems_reported_together(tmp_path):
    """Every problem in the file is reported at once."""
    path = write(tmp_path, "backend: k8s\nhub: {port: x}\nculler: {bogus: 1}\n")
    keys = [p.split(":")[0] for p in error_of(path).problems]
    assert sorted(keys) == ["backend", "culler.bogus", "hub.port"]


def test_environment_override_errors_say_so(tmp_path):
    """A bad value from an environment variable is reported as set by the environment."""
    error = error_of(None, {"ANALYSIS_HUB_HUB__PORT": "abc"})
    assert error.source == "(built-in defaults)"
    [problem] = error.problems
    assert problem.startswith("hub.port: ")
    assert problem.endswith("(set by environment variable)")


def test_environment_override_below_a_value(tmp_path):
    """An override below a key that is not a section is refused, naming the key."""
    path = write(tmp_path, "backend: local\n")
    error = error_of(path, {"ANALYSIS_HUB_BACKEND__X": "1"})
    assert error.problems == ["backend.x: cannot set below 'backend', which is not a section"]


def test_unreadable_file(tmp_path):
    """A missing settings file is reported with its path."""
    error = error_of(tmp_path / "missing.yaml")
    assert error.source == str(tmp_path / "missing.yaml")
    assert error.problems == ["(file): cannot read: No such file or directory"]


def test_invalid_yaml(tmp_path):
    """A file that is not valid YAML is reported with its path on one line."""
    path = write(tmp_path, "hub: {port: 8000\n")
    error = error_of(path)
    assert str(path) in str(error)
    [problem] = error.problems
    assert problem.startswith("(file): not valid YAML:") and "\n" not in problem


def test_non_mapping_file(tmp_path):
    """A file whose top level is not a mapping is refused."""
    assert error_of(write(tmp_path, "- a\n- b\n")).problems == ["(top level): expected a mapping, got list"]


@pytest.mark.parametrize("source", ["file", "environment"])
def test_cgroups_off_as_written_in_yaml(tmp_path, source):
    """`local.cgroups: off`, written unquoted as the docs and error messages say, turns cgroups off."""
    if source == "file":
        settings = load_settings(write(tmp_path, "local:\n  cgroups: off\n"), environ={})
    else:
        settings = load_settings(write(tmp_path, ""), environ={"ANALYSIS_HUB_LOCAL__CGROUPS": "off"})
    assert settings.local.cgroups == "off"


def test_servers_per_user_defaults_and_errors(tmp_path):
    """servers.max_per_user (3) and servers.max_gpu_per_user (1) by default; a bad value or an
    unknown key is reported with its key and what is allowed."""
    settings = load_settings(write(tmp_path, ""), environ={})
    assert (settings.servers.max_per_user, settings.servers.max_gpu_per_user) == (3, 1)
    settings = load_settings(write(tmp_path, "servers: {max_per_user: 5, max_gpu_per_user: 0}\n"), environ={})
    assert (settings.servers.max_per_user, settings.servers.max_gpu_per_user) == (5, 0)
    [problem] = error_of(write(tmp_path, "servers: {max_per_user: 0}\n")).problems
    assert problem.startswith("servers.max_per_user: Input should be greater than or equal to 1")
    [problem] = error_of(write(tmp_path, "servers: {max_gpu_per_user: many}\n")).problems
    assert problem.startswith("servers.max_gpu_per_user: Input should be a valid integer")
    [problem] = error_of(write(tmp_path, "servers: {max_servers: 2}\n")).problems
    assert problem.startswith("servers.max_servers:")
