"""The hub's metrics about servers, recorded from the spawners (see `metrics.py` for the names).

Contract:
- `timed_start(start)` wraps a backend spawner's `start()` (done for every
  `CatalogSpawnerMixin` subclass that defines one): the `start` phase is timed, and
  when JupyterHub's spawn future ends (after the server's first answer) the
  `answer` phase and the whole spawn are observed, or the failure is counted
  with its reason: the one the spawner marked (`spawner.failure_reason`),
  else one read from the exception (`failure_reason`). Nested wrapped
  `start()`s (a subclass calling super) count once.
- `hub_state(app, pool, spawner_class)` reads what is running now, at scrape time: servers by
  profile, team and backend, and the machine's GPU pool (allocated, free). A profile, team
  and backend counted once since the hub started stays, as 0 when none of its servers runs:
  its series goes to 0 instead of vanishing.
- `request_log(handler)` is the hub's tornado request log: JupyterHub's own,
  plus a cull counted when a *service* (the idle culler) stopped a server
  through the REST API. The local backend counts memory-limit stops itself.
"""

from __future__ import annotations

import asyncio
import functools
import re
import time

from tornado import web

from .metrics import (
    GPUS,
    RUNNING_SERVERS,
    SPAWN_DURATION,
    SPAWN_FAILURES,
    SPAWN_PHASE_DURATION,
    count_cull,
    team_of,
)

# Every (profile, team, backend) hub_state counted in this process.
_counted_servers: set[tuple] = set()
# DELETE /hub/api/users/<name>/server or /servers/<server name>, under any base URL.
SERVER_DELETE = re.compile(r"/hub/api/users/[^/]+/server(s/[^/]*)?/?$")


def failure_reason(error: BaseException) -> str:
    if isinstance(error, TimeoutError | asyncio.TimeoutError):
        return "timeout"
    if isinstance(error, web.HTTPError):
        return {400: "bad_request", 503: "gpus_unavailable"}.get(error.status_code, "start_error")
    return "start_error"


def timed_start(start):
    if getattr(start, "timed", False):
        return start

    @functools.wraps(start)
    async def wrapper(self):
        if self._timing_start:
            return await start(self)
        self._timing_start = True
        self.failure_reason = ""
        self.phase_seconds = {}
        began = time.perf_counter()
        marks = {"started": None}
        future = getattr(self, "_spawn_future", None)  # JupyterHub's; None outside a spawn request
        if future is not None:
            future.add_done_callback(lambda f: _spawn_ended(self, f, began, marks))
        try:
            result = await start(self)
        except BaseException as e:
            self.failure_reason = self.failure_reason or failure_reason(e)
            if future is None:
                SPAWN_FAILURES.labels(self.profile_slug, self.backend_name, self.failure_reason).inc()
            raise
        finally:
            self._timing_start = False
        marks["started"] = time.perf_counter()
        self.record_started()
        other = sum(self.phase_seconds.values())
        labels = (self.profile_slug, self.backend_name)
        for phase, seconds in self.phase_seconds.items():
            SPAWN_PHASE_DURATION.labels(*labels, phase).observe(seconds)
        SPAWN_PHASE_DURATION.labels(*labels, "start").observe(marks["started"] - began - other)
        return result

    wrapper.timed = True
    return wrapper


def _spawn_ended(spawner, future: asyncio.Future, began: float, marks: dict) -> None:
    labels = (spawner.profile_slug, spawner.backend_name)
    error = None if not future.cancelled() and future.exception() is None else True
    if error is None:
        now = time.perf_counter()
        if marks["started"] is not None:
            SPAWN_PHASE_DURATION.labels(*labels, "answer").observe(now - marks["started"])
        SPAWN_DURATION.labels(*labels).observe(now - began)
        return
    # Not started: start() failed (its reason is marked) or JupyterHub's start_timeout ran
    # out first. Started: the server never answered (or died first).
    reason = (spawner.failure_reason or "timeout") if marks["started"] is None else "answer"
    SPAWN_FAILURES.labels(*labels, reason).inc()


def hub_state(app, pool, spawner_class) -> list:
    servers: dict[tuple, int] = {}
    for user in list(app.users.values()) if app else []:
        for spawner in list(user.spawners.values()):
            if isinstance(spawner, spawner_class) and spawner.ready:
                key = (spawner.profile_slug, team_of(spawner.user_groups), spawner.backend_name)
                servers[key] = servers.get(key, 0) + 1
    _counted_servers.update(servers)
    families = [
        (
            RUNNING_SERVERS,
            "Servers running now, by profile, team (the user's first group) and backend",
            ["profile", "team", "backend"],
            [(key, servers.get(key, 0)) for key in sorted(_counted_servers)],
        )
    ]
    free = len(pool.free())
    gpus = [(("allocated",), pool.total - free), (("free",), free)]
    families.append((GPUS, "The machine's GPUs (one-machine backends), by state", ["state"], gpus))
    return families


def request_log(handler) -> None:
    from jupyterhub.log import log_request

    log_request(handler)
    request = handler.request
    if request.method != "DELETE" or handler.get_status() not in (202, 204):
        return
    who = getattr(handler, "_jupyterhub_user", None)
    if getattr(who, "kind", None) == "service" and SERVER_DELETE.search(request.path):
        count_cull("idle")
