"""The hub's spawn and cull metrics without a hub: timing, failure reasons, the culler's stops."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from analysis_hub.hub_metrics import failure_reason, request_log, timed_start
from analysis_hub.metrics import CULLS, SPAWN_DURATION, SPAWN_FAILURES, SPAWN_PHASE_DURATION
from tornado import web


class Spawner:
    backend_name = "local"
    profile_slug = "unit"
    failure_reason = ""
    _timing_start = False
    started = 0

    def __init__(self, error: Exception | None = None):
        self.error = error

    def record_started(self):
        self.started += 1

    @timed_start
    async def start(self):
        self.phase_seconds["environment"] = 0.0
        if self.error:
            raise self.error
        return ("127.0.0.1", 1)


def count(histogram, **labels) -> float:
    return sum(
        s.value
        for family in histogram.collect()
        for s in family.samples
        if s.name.endswith("_count") and all(s.labels.get(k) == v for k, v in labels.items())
    )


def spawn(spawner: Spawner, answer: Exception | None = None):
    """Run a start as JupyterHub does: inside a spawn future that ends after the first answer."""

    async def main():
        spawner._spawn_future = asyncio.get_running_loop().create_future()
        try:
            await spawner.start()
        finally:
            if answer:
                spawner._spawn_future.set_exception(answer)
            else:
                spawner._spawn_future.set_result(None)
            await asyncio.sleep(0)

    asyncio.run(main())


def test_a_successful_spawn_is_timed_per_phase_and_recorded_once():
    """The whole spawn and each phase are observed once the spawn future ends; usage opens once."""
    before = count(SPAWN_DURATION, profile="unit")
    spawner = Spawner()
    spawn(spawner)
    assert count(SPAWN_DURATION, profile="unit") == before + 1
    for phase in ("environment", "start", "answer"):
        assert count(SPAWN_PHASE_DURATION, profile="unit", phase=phase) >= 1
    assert spawner.started == 1


@pytest.mark.parametrize(
    "error,reason",
    [
        (web.HTTPError(503, "all GPUs are in use"), "gpus_unavailable"),
        (web.HTTPError(500, "cgroups"), "start_error"),
        (TimeoutError(), "timeout"),
        (RuntimeError("bug"), "start_error"),
    ],
)
def test_a_failed_start_counts_once_with_its_reason(error, reason):
    """A start that raises counts one failure, with the reason read from its exception."""
    assert failure_reason(error) == reason
    before = SPAWN_FAILURES.labels("unit", "local", reason)._value.get()
    with pytest.raises(type(error)):
        spawn(Spawner(error), answer=error)
    assert SPAWN_FAILURES.labels("unit", "local", reason)._value.get() == before + 1


def test_a_server_that_never_answers_counts_as_an_answer_failure():
    """Started but never answering (JupyterHub's http_timeout) is the `answer` reason."""
    before = SPAWN_FAILURES.labels("unit", "local", "answer")._value.get()
    spawn(Spawner(), answer=TimeoutError())
    assert SPAWN_FAILURES.labels("unit", "local", "answer")._value.get() == before + 1


def handler(method: str, path: str, status: int, kind: str):
    return SimpleNamespace(
        request=SimpleNamespace(
            method=method, path=path, uri=path, headers={}, remote_ip="127.0.0.1", request_time=lambda: 0.01
        ),
        _jupyterhub_user=SimpleNamespace(kind=kind, name="x"),
        current_user=None,
        settings={},
        get_status=lambda: status,
    )


@pytest.mark.parametrize(
    "method,path,status,kind,counted",
    [
        ("DELETE", "/hub/api/users/alice/server", 204, "service", True),
        ("DELETE", "/base/hub/api/users/alice/servers/gpu", 202, "service", True),
        ("DELETE", "/hub/api/users/alice/server", 204, "user", False),  # the user's own stop
        ("DELETE", "/hub/api/users/alice/server", 400, "service", False),
        ("DELETE", "/hub/api/users/alice", 204, "service", False),  # a user deleted, not a server
        ("POST", "/hub/api/users/alice/server", 201, "service", False),
    ],
)
def test_only_a_services_stop_of_a_server_counts_as_an_idle_cull(method, path, status, kind, counted):
    """The culler (a service) stopping a server counts; a user's stop or another request doesn't."""
    before = CULLS.labels("idle")._value.get()
    request_log(handler(method, path, status, kind))
    assert CULLS.labels("idle")._value.get() == before + counted
