"""Team folders' plan (who gets which, the names each backend uses), their settings, and the links
made in a home (run here as this user, as the sandbox does in the child)."""

from __future__ import annotations

import os
import re

import pytest
from analysis_hub.runtime.team_folders import TeamFolderError, ensure_team_folders, link_team_folders
from analysis_hub.settings import SettingsError, load_settings
from analysis_hub.teams import TeamFolder, docker_volume_name, member_teams, unix_group_name

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def test_members_get_their_teams_folders_only_read_only_where_flagged():
    teams = {"data-team": {}, "gpu-team": {"read_only": True}, "ml-team": {}}
    assert member_teams(teams, {"gpu-team", "data-team", "not-a-team"}) == (
        TeamFolder("data-team"),
        TeamFolder("gpu-team", read_only=True),
    )
    assert member_teams(teams, set()) == ()
    assert TeamFolder("data-team").home_path == "teams/data-team"


def test_team_names_map_to_unix_groups_and_volumes_that_never_collide():
    """At most 32 characters, a DNS label (the pod's volume name), never a user's prefix; long
    names that share a start stay apart."""
    assert unix_group_name("data-team") == "team-data-team"
    long_a, long_b = "a" * 40 + "-one", "a" * 40 + "-two"
    names = {unix_group_name(long_a), unix_group_name(long_b)}
    assert len(names) == 2
    for name in [*names, unix_group_name("x" * 63)]:
        assert len(name) <= 32 and DNS_LABEL.match(name) and name.startswith("team-")
    assert docker_volume_name("analysis-hub-1a2b3c4d", "data-team") == "analysis-hub-1a2b3c4d-team-data-team"


def settings_from(tmp_path, text: str, environ: dict | None = None):
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    return load_settings(path, environ or {})


def test_teams_settings_and_their_errors(tmp_path):
    """`teams:` maps a hub group to {read_only}; a bad name, an unknown key or (on Kubernetes) a
    team without a claim is refused naming the key."""
    settings = settings_from(tmp_path, "teams: {data-team: , gpu-team: {read_only: true}}")
    assert {t: s.read_only for t, s in settings.teams.items()} == {"data-team": False, "gpu-team": True}
    for text, message in [
        ("teams: {Data Team: {}}", "teams: team name 'Data Team' is not valid (lower-case letters"),
        ("teams: {data-: {}}", "team name 'data-' is not valid"),
        (
            "teams: {data-team: {readonly: true}}",
            "teams.data-team.readonly: unknown key (allowed: read_only)",
        ),
        (
            "backend: kubernetes\nteams: {data-team: {}}",
            "kubernetes.team_claims: no claim for team data-team",
        ),
    ]:
        with pytest.raises(SettingsError) as refused:
            settings_from(tmp_path, text)
        assert message in str(refused.value)
    claimed = "backend: kubernetes\nteams: {data-team: {}}\nkubernetes: {team_claims: {data-team: c}}"
    assert settings_from(tmp_path, claimed).kubernetes.team_claims == {"data-team": "c"}


def test_links_follow_the_users_teams_and_leave_the_users_own_files(tmp_path):
    root, home = tmp_path / "teams", tmp_path / "home"
    for team in ("data-team", "gpu-team"):
        (root / team).mkdir(parents=True)
    home.mkdir()
    link_team_folders(home, (TeamFolder("data-team"), TeamFolder("gpu-team")), root)
    assert os.readlink(home / "teams" / "data-team") == str(root / "data-team")
    (home / "teams" / "notes.txt").write_text("mine")
    os.symlink("/elsewhere", home / "teams" / "my-link")

    link_team_folders(home, (TeamFolder("gpu-team"),), root)  # left data-team
    assert sorted(os.listdir(home / "teams")) == ["gpu-team", "my-link", "notes.txt"]

    other = tmp_path / "other-home"
    other.mkdir()
    (other / "teams").write_text("a file of the user's")
    link_team_folders(other, (TeamFolder("gpu-team"),), root)
    assert (other / "teams").read_text() == "a file of the user's"
    nobody = tmp_path / "no-teams"
    nobody.mkdir()
    link_team_folders(nobody, (), root)
    assert os.listdir(nobody) == [], "no empty ~/teams for users in no team"


def test_a_failing_team_folder_step_is_one_clear_error_naming_the_team(tmp_path):
    """What the spawn page or the run shows when a folder can't be made: the team and the cause."""
    (tmp_path / "teams").write_text("a file where the teams folder should be")
    with pytest.raises(
        TeamFolderError, match=r"preparing the team folders \(data-team\) failed: .*Not a directory"
    ):
        ensure_team_folders(tmp_path / "teams", iter([TeamFolder("data-team")]), None)
