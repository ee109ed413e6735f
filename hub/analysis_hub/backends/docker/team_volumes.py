"""Team folders on the docker backend: one named volume per team (I/O against the engine).

Contract: `team_volumes(name_prefix, folders)` is pure: the volumes a
container mounts for its team folders, each team's `teams.docker_volume_name`
at /home/jovyan/teams/<team> (`ro` where the team is read-only): a member's
server gets its teams', a team's pipeline run its team's, nobody anything
else. `ensure_team_volumes(client, names, image)` creates each missing
volume and hands it to jovyan (uid 1000, gid 100, setgid 2770) with a
one-off root container of `image` without network: an empty volume is
root's, and the servers run as jovyan without capabilities.
"""

from __future__ import annotations

from ...images import HOME, JOVYAN_GID, JOVYAN_UID
from ...teams import TeamFolder, docker_volume_name

TEAM_LABEL = "analysis-hub/team"


class TeamVolumeError(RuntimeError):
    pass


def team_volumes(name_prefix: str, folders: tuple[TeamFolder, ...]) -> dict[str, dict[str, str]]:
    return {
        docker_volume_name(name_prefix, folder.team): {
            "bind": f"{HOME}/{folder.home_path}",
            "mode": "ro" if folder.read_only else "rw",
        }
        for folder in folders
    }


def run_folders(teams: tuple[TeamFolder, ...], team: str) -> tuple[TeamFolder, ...]:
    """A pipeline run is its team's: that team's folder only."""
    return tuple(folder for folder in teams if folder.team == team)


def ensure_team_volumes(client, names: list[str], image: str) -> None:
    """Blocking (a docker.APIClient); run it in a thread."""
    import docker.errors

    for name in names:
        try:
            client.inspect_volume(name)
            continue
        except docker.errors.NotFound:
            pass
        client.create_volume(name=name, labels={TEAM_LABEL: name})
        container = client.create_container(
            image=image,
            entrypoint=["/bin/sh", "-c", f"chown {JOVYAN_UID}:{JOVYAN_GID} /team && chmod 2770 /team"],
            user="0",
            network_disabled=True,
            host_config=client.create_host_config(binds={name: {"bind": "/team", "mode": "rw"}}),
        )
        try:
            client.start(container["Id"])
            status = client.wait(container["Id"]).get("StatusCode")
        finally:
            client.remove_container(container["Id"], force=True)
        if status != 0:
            client.remove_volume(name, force=True)  # the next start tries again
            raise TeamVolumeError(f"could not hand the team volume {name} to jovyan (exit {status})")
