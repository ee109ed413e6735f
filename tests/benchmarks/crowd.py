"""Benchmark 2: a crowd of simulated users, staggered as hubtraf staggers them.

Contract: `run_crowd(hub, size, plan)` drives `size` simulated users against
one running hub (see hubs.py) and returns a JSON-ready dict; `run(sizes,
plan)` does that for each size against a fresh analysis-hub and a fresh
vanilla JupyterHub in turn (which goes first alternates between sizes) and
adds the p95 ratios; `format_table(result)` renders it. A size whose
servers would not fit in the memory available now is skipped, and says so.

Each simulated user, in its own thread, after a start delay drawn from
[0, ramp] (ramp = `ramp_s_per_10` per 10 users; seeded, so both hubs see the
same schedule), does what hubtraf's users do:

    login (the real form, then an API token) -> spawn (request until the
    progress stream says ready) -> kernel start -> `cells` executions of
    `5 * 4` with think time between -> kernel stop -> server stop

and records each phase's duration, or the phase it failed in and why. A
user succeeds when every phase does. While the crowd runs, the hub's and the
proxy's CPU and memory are sampled, and a probe calls the hub's REST API
4 times a second; the crowd's own REST calls are timed too. Every wait has a
timeout, and the whole crowd a deadline, so a run always ends.
"""

from __future__ import annotations

import random
import sys
import threading
import time
import traceback
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import hubs
import psutil
import requests
import sampling
from stats import fmt as _s
from stats import ratio, summarize

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: harness, hubclient, kernels

from kernels import run_code, start_kernel

PHASES = ("login_s", "spawn_s", "kernel_s", "first_execute_s", "execute_s", "stop_s", "session_s")
CODE, EXPECTED = "5 * 4", "20"
PROBE_EVERY_S = 0.25


@dataclass(frozen=True)
class CrowdPlan:
    ramp_s_per_10: float = 10  # start delays are drawn from [0, ramp_s(size)]
    profile: str = "pyspark"
    cells: int = 5
    think_s: tuple[float, float] = (0.5, 2.0)
    spawn_timeout_s: float = 600
    seed: int = 7
    per_user_mib: float = 300  # the memory budget of one user's server and kernel

    def ramp_s(self, size: int) -> float:
        return self.ramp_s_per_10 * size / 10

    def delays(self, size: int) -> list[float]:
        rng = random.Random(self.seed + size)
        return sorted(rng.uniform(0, self.ramp_s(size)) for _ in range(size))

    def deadline_s(self, size: int) -> float:
        return self.ramp_s(size) + self.spawn_timeout_s + 120 + size * 3


def crowd_names(size: int) -> list[str]:
    # "bench" prefix: their Unix users (jupyter-bench-...) are recognisably the benchmark's
    return [f"bench-crowd-{i:03d}" for i in range(1, size + 1)]


class ApiTimer:
    """Collects the duration of the hub REST calls made through the sessions it hooks.

    Left out: the progress stream, and the server start and stop requests,
    which by design wait up to 10 s for the spawn or stop to finish.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.seconds: list[float] = []

    def hook(self, session: requests.Session) -> None:
        session.hooks["response"].append(self._record)

    def _record(self, response, *args, **kwargs):
        request = response.request
        long_by_design = request.method in ("POST", "DELETE") and response.url.endswith("/server")
        if "/hub/api/" in response.url and "/progress" not in response.url and not long_by_design:
            with self.lock:
                self.seconds.append(response.elapsed.total_seconds())


def simulate_user(hub, name: str, delay: float, plan: CrowdPlan, rng: random.Random, timer: ApiTimer) -> dict:
    record: dict = {"user": name, "start_delay_s": round(delay, 2), "ok": False}
    phase = "login_s"
    try:
        time.sleep(delay)
        began = time.monotonic()
        user = hub.user(name)
        timer.hook(user.api)
        record["login_s"] = time.monotonic() - began

        phase = "spawn_s"
        t = time.monotonic()
        response = user.start({"profile": plan.profile})
        if response.status_code not in (201, 202):
            raise RuntimeError(f"spawn refused: {response.status_code} {response.text[:200]}")
        events = user.progress_events(timeout=plan.spawn_timeout_s)
        if not events or not events[-1].get("ready"):
            raise RuntimeError(f"spawn failed: {(events[-1:] or [{}])[0].get('message', 'no events')}")
        record["spawn_s"] = time.monotonic() - t

        phase = "kernel_s"
        t = time.monotonic()
        kernel = start_kernel(user)
        record["kernel_s"] = time.monotonic() - t

        phase = "execute_s"
        executions = []
        for cell in range(plan.cells):
            if cell:
                time.sleep(rng.uniform(*plan.think_s))
            t = time.monotonic()
            output = run_code(user, CODE, kernel, timeout=120).strip()
            executions.append(time.monotonic() - t)
            if output != EXPECTED:
                raise RuntimeError(f"{CODE} gave {output!r}")
        record["first_execute_s"] = executions[0]
        record["execute_s"] = executions[1:]

        phase = "stop_s"
        t = time.monotonic()
        user.server_api(f"/kernels/{kernel}", method="DELETE", timeout=60)
        user.stop()
        record["stop_s"] = time.monotonic() - t
        record["session_s"] = time.monotonic() - began
        record["ok"] = True
    except Exception as e:  # a failed user is a result, not a crash of the benchmark
        record["failed_phase"] = phase
        record["error"] = f"{type(e).__name__}: {e}"[:300]
        record["traceback_tail"] = traceback.format_exc(limit=2)[-400:]
    return record


def _probe(hub, name: str, stop: threading.Event, out: list[float], errors: list[str]) -> None:
    try:
        user = hub.user(name)
    except Exception as e:
        errors.append(f"probe login: {e}")
        return
    while not stop.is_set():
        t = time.monotonic()
        try:
            user.model()
            out.append(time.monotonic() - t)
        except Exception as e:
            errors.append(f"{type(e).__name__}: {e}"[:200])
        stop.wait(PROBE_EVERY_S)


def run_crowd(hub, size: int, plan: CrowdPlan, probe_user: str = "admin", log=print) -> dict:
    names = crowd_names(size)
    delays = plan.delays(size)
    timer = ApiTimer()
    results: list[dict | None] = [None] * size
    probe_seconds: list[float] = []
    probe_errors: list[str] = []
    stop_probe = threading.Event()

    sampler = sampling.ProcessSampler({"hub": hub.hub_pid, "proxy": hubs.proxy_pid(hub)}).start()
    probe = threading.Thread(target=_probe, args=(hub, probe_user, stop_probe, probe_seconds, probe_errors))
    probe.daemon = True
    probe.start()

    def worker(i: int) -> None:
        rng = random.Random(plan.seed * 1000 + i)
        results[i] = simulate_user(hub, names[i], delays[i], plan, rng, timer)

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(size)]
    for thread in threads:
        thread.start()
    deadline = started + plan.deadline_s(size)
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    wall = time.monotonic() - started
    stop_probe.set()
    probe.join(10)
    resources = sampler.stop()

    users = [r or {"user": names[i], "ok": False, "failed_phase": "deadline"} for i, r in enumerate(results)]
    failures = Counter(r.get("failed_phase", "?") for r in users if not r["ok"])
    phases = {}
    for phase in PHASES:
        values = []
        for r in users:
            value = r.get(phase)
            values.extend(value if isinstance(value, list) else [] if value is None else [value])
        phases[phase] = summarize(values)
    log(
        f"  crowd {size:>3} {hub.kind:<12} {sum(r['ok'] for r in users)}/{size} ok in {wall:.0f} s,"
        f" spawn p95 {phases['spawn_s']['p95'] or 0:.1f} s"
    )
    return {
        "size": size,
        "succeeded": sum(r["ok"] for r in users),
        "failed_by_phase": dict(failures),
        "wall_s": round(wall, 1),
        "phases": phases,
        "hub_api": {
            "crowd_calls_s": summarize(timer.seconds),
            "probe_s": summarize(probe_seconds),
            "all_s": summarize(timer.seconds + probe_seconds),
            "probe_errors": probe_errors[:5],
        },
        "resources": resources,
        "users": users,
    }


def memory_allows(size: int, plan: CrowdPlan, reserve_gib: float = 3) -> tuple[bool, str]:
    """Whether `size` users' servers and kernels fit in the memory available now."""
    available_mib = psutil.virtual_memory().available / 2**20
    needed_mib = size * plan.per_user_mib + reserve_gib * 1024
    reason = f"{size} users need about {needed_mib / 1024:.1f} GiB, {available_mib / 1024:.1f} GiB available"
    return available_mib >= needed_mib, reason


def run(sizes: list[int], plan: CrowdPlan, log=print) -> dict:
    """Each size against a fresh analysis-hub and a fresh vanilla hub (which goes first alternates)."""
    result: dict = {"plan": asdict(plan), "sizes": {}}
    environments = hubs.environments([plan.profile])
    for index, size in enumerate(sizes):
        fits, reason = memory_allows(size, plan)
        if not fits:
            log(f"  crowd {size}: skipped ({reason})")
            result["sizes"][str(size)] = {"skipped": reason}
            continue
        names = crowd_names(size)
        entry: dict = {"ramp_s": plan.ramp_s(size)}
        order = (hubs.ANALYSIS, hubs.VANILLA) if index % 2 == 0 else (hubs.VANILLA, hubs.ANALYSIS)
        for kind in order:
            if kind == hubs.ANALYSIS:
                hub = hubs.start_analysis_hub(
                    {"admin": hubs.ADMIN_PASSWORD, **dict.fromkeys(names, "crowd-pw-1")}
                )
            else:
                hub = hubs.start_vanilla_hub(["admin", *names], environments)
            try:
                entry[kind] = run_crowd(hub, size, plan, log=log)
                entry[kind]["hub_peak_rss_mib"] = _mib(sampling.peak_rss_bytes(hub.hub_pid))
            finally:
                hub.stop()
        a, v = entry[hubs.ANALYSIS]["phases"], entry[hubs.VANILLA]["phases"]
        entry["ratio_p95"] = {phase: ratio(a[phase]["p95"], v[phase]["p95"]) for phase in PHASES}
        result["sizes"][str(size)] = entry
    return result


def _mib(value: int | None) -> float | None:
    return None if value is None else round(value / 2**20, 1)


def format_table(result: dict) -> str:
    plan = result["plan"]
    lines = [
        f"crowd: profile {plan['profile']}, {plan['cells']} cells per user, start stagger"
        f" {plan['ramp_s_per_10']} s per 10 users; p95 in s (ratio to vanilla)",
        f"{'users':>5} {'hub':<13} {'ok':>7} {'login':>11} {'spawn':>11} {'kernel':>11} {'1st exec':>11}"
        f" {'exec':>11} {'stop':>11} {'API p99':>8} {'hub CPU':>8} {'hub RSS':>8}",
    ]
    for size, entry in result["sizes"].items():
        if "skipped" in entry:
            lines.append(f"{size:>5} skipped: {entry['skipped']}")
            continue
        for kind in (hubs.ANALYSIS, hubs.VANILLA):
            r, cells = entry[kind], []
            for phase in PHASES[:-1]:  # session_s is their sum, with think time
                p95 = r["phases"][phase]["p95"]
                if kind == hubs.ANALYSIS:
                    cells.append(f"{_s(p95, 1):>5} ({_s(entry['ratio_p95'][phase])})")
                else:
                    cells.append(f"{_s(p95, 1):>11}")
            hub = r["resources"].get("hub", {})
            lines.append(
                f"{size:>5} {kind:<13} {r['succeeded']:>3}/{size:<3} {' '.join(cells)}"
                f" {_s(r['hub_api']['all_s']['p99'], 3):>6} s {hub.get('cpu_s', 0):>6.0f} s"
                f" {r['hub_peak_rss_mib']:>4.0f} MiB"
            )
    return "\n".join(lines)
