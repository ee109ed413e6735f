#!/usr/bin/env python3
"""What metrics and usage records add to a spawn, against the same path with them off.

    .venv/bin/python tests/benchmarks/metrics_cost.py [--runs N] [--warm-spawn-s S]
    make bench BENCH_ARGS="--only metrics"

Contract: `run(runs, warm_spawn_s)` times, in this process, the work the
metrics put on the warm first-result path, each `runs` times: a spawner's
`start()` wrapped by `hub_metrics.timed_start` (phases observed, the
spawn future's callback) against the same `start()` unwrapped; the usage
session opened and closed in a SQLite file (`usage.UsageLog`); the hub's
request log with the cull check against JupyterHub's own; and one scrape of
the hub's registry with 100 running servers. The added seconds per spawn
(wrapper + usage + request log of the spawn's ~10 requests) over
`warm_spawn_s` (the warm first-result median, e.g. from
`--only first`) give the ratio; the target is at most 1.02 (issue 16).
Measured in-process because the difference (milliseconds) is far below the
run-to-run noise of a real spawn (seconds) on a shared 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from stats import fmt as _s
from stats import summarize

TARGET = 1.02
REQUESTS_PER_SPAWN = 10  # the spawn's API calls, progress stream and proxy checks, roughly


class Spawner:
    """The attributes `timed_start` reads from a CatalogSpawnerMixin, with a start that does nothing."""

    backend_name = "local"
    profile_slug = "pyspark"
    failure_reason = ""
    _timing_start = False

    def record_started(self) -> None:
        pass

    async def start(self):
        return ("127.0.0.1", 8888)


def _time_start(start, spawner, runs: int) -> list[float]:
    async def once() -> float:
        loop = asyncio.get_running_loop()
        spawner._spawn_future = loop.create_future()
        began = time.perf_counter()
        await start(spawner)
        spawner._spawn_future.set_result(None)
        await asyncio.sleep(0)  # the done callback (answer phase, total) runs here
        return time.perf_counter() - began

    async def all_runs() -> list[float]:
        return [await once() for _ in range(runs)]

    return asyncio.run(all_runs())


def _time(fn, runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        began = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - began)
    return samples


def run(runs: int, warm_spawn_s: float) -> dict:
    from analysis_hub.hub_metrics import hub_state, request_log, timed_start
    from analysis_hub.metrics import register_state
    from analysis_hub.runtime.gpus import GpuPool
    from analysis_hub.usage import UsageLog
    from jupyterhub.log import log_request
    from prometheus_client import REGISTRY, generate_latest

    plain = _time_start(Spawner.start, Spawner(), runs)
    timed = _time_start(timed_start(Spawner.start), Spawner(), runs)

    with tempfile.TemporaryDirectory() as tmp:
        log = UsageLog(Path(tmp) / "usage.sqlite")

        def session():
            opened = log.open_session(
                user="u", server="", profile="p", team="t", cpu=1, memory_bytes=1, gpus=0, at=time.time()
            )
            log.close_session(opened, time.time())

        usage = _time(session, runs)

    handler = _FakeHandler()
    jupyterhub_log = _time(lambda: log_request(handler), runs)
    ours_log = _time(lambda: request_log(handler), runs)

    servers = [SimpleNamespace(ready=True, profile_slug="pyspark", user_groups={"t"}, backend_name="local")]
    app = SimpleNamespace(users={i: SimpleNamespace(spawners={"": servers[0]}) for i in range(100)})
    register_state("bench", lambda: hub_state(app, GpuPool([]), SimpleNamespace))
    scrape = _time(lambda: generate_latest(REGISTRY), max(10, runs // 10))

    median = {k: summarize(v)["p50"] for k, v in {"plain": plain, "timed": timed, "usage": usage}.items()}
    log_added = summarize(ours_log)["p50"] - summarize(jupyterhub_log)["p50"]
    added = median["timed"] - median["plain"] + median["usage"] + REQUESTS_PER_SPAWN * max(log_added, 0.0)
    return {
        "runs": runs,
        "start_plain_s": summarize(plain),
        "start_timed_s": summarize(timed),
        "usage_session_s": summarize(usage),
        "request_log_jupyterhub_s": summarize(jupyterhub_log),
        "request_log_ours_s": summarize(ours_log),
        "scrape_100_servers_s": summarize(scrape),
        "added_per_spawn_s": added,
        "warm_spawn_s": warm_spawn_s,
        "ratio": (warm_spawn_s + added) / warm_spawn_s,
        "target": TARGET,
    }


class _FakeHandler:
    """Enough of a tornado handler for the two request logs: a DELETE of a server by a service."""

    def __init__(self):
        import logging

        logging.getLogger("JupyterHub").disabled = True
        self.request = SimpleNamespace(
            method="DELETE",
            path="/hub/api/users/alice/server",
            uri="/hub/api/users/alice/server",
            headers={},
            remote_ip="127.0.0.1",
            request_time=lambda: 0.001,
        )
        self._jupyterhub_user = SimpleNamespace(kind="service", name="idle-culler")
        self.current_user = self._jupyterhub_user
        self.settings = {}

    def get_status(self):
        return 204


def format_table(result: dict) -> str:
    lines = [f"Metrics' cost on the warm first-result path ({result['runs']} runs each, p50)"]
    for key in ("start_plain_s", "start_timed_s", "usage_session_s", "request_log_jupyterhub_s",
                "request_log_ours_s", "scrape_100_servers_s"):  # fmt: skip
        lines.append(f"  {key:<26} {_s(result[key]['p50'] * 1000, 3)} ms")
    lines.append(
        f"  added per spawn {result['added_per_spawn_s'] * 1000:.2f} ms on a {result['warm_spawn_s']:.2f} s"
        f" warm spawn: ratio {result['ratio']:.4f} (target <= {TARGET})"
    )
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=2000)
    p.add_argument("--warm-spawn-s", type=float, default=3.0, help="warm first-result median to compare with")
    args = p.parse_args()
    result = run(args.runs, args.warm_spawn_s)
    print(format_table(result))
    print(json.dumps(result, indent=1, default=str), file=sys.stderr)
    return 0 if result["ratio"] <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
