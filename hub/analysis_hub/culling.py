"""The idle culler: jupyterhub-idle-culler's sweep, with each server's own idle timeout.

Contract: `python -m analysis_hub.culling` takes jupyterhub-idle-culler's
options unchanged (`--timeout`, `--cull-every`, ...; the hub runs it as a
managed service, z2jh's chart as its `cull` service) and runs its sweep. Only
the decision differs: `cull_after_own_timeout` stops a server when it has
been idle longer than the timeout its owner chose within the profile's range
(`user_options["idle_timeout"]`, seconds, written by the spawner when the
server started: `backends.catalog_spawner.apply_profile_request`), and
after `--timeout` (the site's `culler.timeout`) when it has none. The REST
API shows `user_options` with the `read:servers` scope the culler already
holds, so it needs no more.

Named servers are swept like default ones: the upstream sweep lists the users
with a ready server (`GET /users?state=ready`, paginated), and each user
model carries all of that user's servers, each with its own `last_activity`
(which the servers report themselves, see `activity.py`).
"""

from __future__ import annotations

from jupyterhub_idle_culler import IdleCuller
from traitlets import default

from .idle_timeouts import IDLE_TIMEOUT_KEY


def server_timeout(server: dict, site_timeout: int) -> int:
    """Seconds of idleness this server may have: its own choice, else the site's."""
    chosen = (server.get("user_options") or {}).get(IDLE_TIMEOUT_KEY)
    if isinstance(chosen, int) and not isinstance(chosen, bool) and chosen > 0:
        return chosen
    return site_timeout


def cull_after_own_timeout(*, inactive, inactive_limit, server, **kwargs) -> bool:
    """jupyterhub-idle-culler's `cull_arbiter_hook`: idle longer than the server's own timeout."""
    return inactive.total_seconds() >= server_timeout(server, inactive_limit)


class PerServerIdleCuller(IdleCuller):
    @default("cull_arbiter_hook")
    def _default_arbiter(self):
        return cull_after_own_timeout

    @default("config_file")
    def _default_config_file(self):
        # Everything comes from the command line; don't pick up a stray file in the working folder.
        return ""


def main() -> None:
    PerServerIdleCuller.launch_instance()


if __name__ == "__main__":
    main()
