"""Benchmarks 1 and 4: time to first result per profile, and the memory of a hub and an idle server.

Contract: `run(profiles, runs, cold_runs, idle_wait_s)` starts analysis-hub
and a vanilla JupyterHub side by side (hubs.py) and returns a JSON-ready
dict; `format_table(result)` renders it.

A run is what a user does to get a working notebook, timed by phase:
login (the real login form, then an API token) -> spawn (request until the
progress stream says ready, as the spawn page sees it) -> kernel started
(REST) -> `1+1` evaluated (over the kernel's websocket). The server is
stopped after each run, untimed. The hub's log says where the spawn went:
`prepare_s` (analysis-hub only: environment check, Unix user, home, cgroup)
and `hub_start_s` (JupyterHub's "took N seconds to start").

- warm: the profile's environment is already built (the test suite's
  shared envs). Per profile the two hubs take turns (A V, V A, ...) so a
  busy moment of the machine hits both; each hub's first run is a warm-up,
  kept out of the statistics.
- cold (analysis-hub only): a fresh hub with an empty environments folder,
  so each profile's first spawn builds its environment from the lock file.
  A vanilla JupyterHub has no such step: its admin builds environments by
  hand beforehand, so there is no ratio.
- memory: after the warm runs, one more server per hub and profile idles
  `idle_wait_s` with no kernel; its resident memory (process tree) is read.
  Each hub's own peak (VmHWM) is read before it stops.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import hublog
import hubs
import sampling
from stats import fmt as _s
from stats import ratio, summarize

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: kernels

from kernels import run_code, start_kernel

PROFILE_OPTIONS = {
    "pyspark": {"profile": "pyspark"},
    "pytorch": {"profile": "pytorch", "accelerator": "cpu"},  # the benchmark machine has no GPU
    "tensorflow": {"profile": "tensorflow"},
}
USER, PASSWORD = "bench-first", "bench-first-pw-1"
PHASES = ("login_s", "spawn_s", "kernel_s", "execute_s", "total_s")


def measure_once(hub: hubs.HubUnderTest, options: dict, timeout: float = 1800) -> dict:
    started = time.monotonic()
    user = hub.user(USER)
    logged_in = time.monotonic()
    response = user.start(options)
    if response.status_code not in (201, 202):
        raise RuntimeError(f"{hub.kind}: spawn refused: {response.status_code} {response.text[:300]}")
    events = user.progress_events(timeout=timeout)
    if not events or not events[-1].get("ready"):
        raise RuntimeError(f"{hub.kind}: spawn failed: {events[-1:] or 'no events'}")
    ready = time.monotonic()
    kernel = start_kernel(user)
    kernel_started = time.monotonic()
    output = run_code(user, "1+1", kernel).strip()
    done = time.monotonic()
    if output != "2":
        raise RuntimeError(f"{hub.kind}: 1+1 gave {output!r}")
    user.stop()
    spawn = (hublog.spawn_phases(hub.log(), USER) or [{}])[-1]
    return {
        "login_s": logged_in - started,
        "spawn_s": ready - logged_in,
        "kernel_s": kernel_started - ready,
        "execute_s": done - kernel_started,
        "total_s": done - started,
        "prepare_s": spawn.get("prepare_s"),
        "hub_start_s": spawn.get("start_s"),
    }


def idle_server_mib(hub: hubs.HubUnderTest, options: dict, idle_wait_s: float) -> float:
    """Resident memory of one idle server (its whole process tree) after `idle_wait_s`."""
    user = hub.user(USER)
    response = user.start(options)
    if response.status_code not in (201, 202):
        raise RuntimeError(f"{hub.kind}: spawn refused: {response.text[:300]}")
    user.wait_ready()
    time.sleep(idle_wait_s)
    total = sum(sampling.rss_bytes(pid) or 0 for pid in user_server_pids(hub, USER))
    user.stop()
    return round(total / 2**20, 1)


def user_server_pids(hub: hubs.HubUnderTest, name: str) -> list[int]:
    """The processes of `name`'s server (and anything it started), not the hub's services."""
    marker = f"JUPYTERHUB_USER={name}\0".encode()
    return [pid for pid in hubs.harness.server_pids(hub.internal_port) if marker in _environ(pid)]


def _environ(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""


def summarize_runs(runs: list[dict]) -> dict:
    return {
        phase: summarize(run[phase] for run in runs if run[phase] is not None)
        for phase in (*PHASES, "prepare_s", "hub_start_s")
    }


def run_warm(profiles: list[str], runs: int, idle_wait_s: float, log=print) -> dict:
    environments = hubs.environments(profiles)
    users = {"admin": hubs.ADMIN_PASSWORD, USER: PASSWORD}
    both = [hubs.start_analysis_hub(users)]
    try:
        both.append(hubs.start_vanilla_hub(list(users), environments))
        result: dict = {"profiles": {}}
        for slug in profiles:
            options = PROFILE_OPTIONS[slug]
            measured: dict[str, list[dict]] = {hub.kind: [] for hub in both}
            for i in range(runs + 1):  # run 0 of each hub is the warm-up
                for hub in both if i % 2 == 0 else reversed(both):
                    record = measure_once(hub, options)
                    log(f"  {slug:<10} {hub.kind:<12} run {i}: {record['total_s']:.2f} s")
                    measured[hub.kind].append(record)
            entry = {
                hub.kind: {
                    "warm": summarize_runs(measured[hub.kind][1:]),
                    "runs": measured[hub.kind],
                    "idle_server_rss_mib": idle_server_mib(hub, options, idle_wait_s),
                }
                for hub in both
            }
            a, v = entry[hubs.ANALYSIS]["warm"]["total_s"], entry[hubs.VANILLA]["warm"]["total_s"]
            entry["ratio_total_p50"] = ratio(a["p50"], v["p50"])
            entry["ratio_total_p95"] = ratio(a["p95"], v["p95"])
            result["profiles"][slug] = entry
        result["hub_peak_rss_mib"] = {
            hub.kind: round((sampling.peak_rss_bytes(hub.hub_pid) or 0) / 2**20, 1) for hub in both
        }
        return result
    finally:
        for hub in both:
            hub.stop()


def run_cold(profiles: list[str], cold_runs: int, log=print) -> dict:
    """Each profile's first spawn on a hub with an empty environments folder, `cold_runs` times."""
    users = {"admin": hubs.ADMIN_PASSWORD, USER: PASSWORD}
    runs: dict[str, list[dict]] = {slug: [] for slug in profiles}
    for i in range(cold_runs):
        # Never the shared warm envs: a folder of its own, removed afterwards.
        envs_dir = Path(tempfile.mkdtemp(prefix="bench-cold-envs-", dir=hubs.harness.TEST_ROOT))
        try:
            hub = hubs.start_analysis_hub(users, envs_dir=envs_dir)
            try:
                for slug in profiles:
                    record = measure_once(hub, PROFILE_OPTIONS[slug])
                    log(f"  {slug:<10} cold run {i}: {record['total_s']:.1f} s")
                    runs[slug].append(record)
            finally:
                hub.stop()
        finally:
            shutil.rmtree(envs_dir, ignore_errors=True)
    return {slug: {"cold": summarize_runs(r), "runs": r} for slug, r in runs.items()}


def run(profiles: list[str], runs: int, cold_runs: int, idle_wait_s: float = 10, log=print) -> dict:
    result = run_warm(profiles, runs, idle_wait_s, log)
    if cold_runs:
        for slug, entry in run_cold(profiles, cold_runs, log).items():
            result["profiles"][slug][hubs.ANALYSIS]["cold"] = entry["cold"]
            result["profiles"][slug][hubs.ANALYSIS]["cold_runs"] = entry["runs"]
    result["settings"] = {"runs": runs, "cold_runs": cold_runs, "idle_wait_s": idle_wait_s}
    return result


def format_table(result: dict) -> str:
    settings = result["settings"]
    lines = [
        f"time to first result: login -> spawn -> kernel -> 1+1; warm p50 of {settings['runs']} runs"
        f" (total p50/p95); cold: {settings['cold_runs']} first build(s), analysis-hub only",
        f"{'profile':<11} {'hub':<13} {'login':>6} {'spawn':>6} {'prepare':>8} {'kernel':>7} {'1+1':>6}"
        f" {'total p50/p95':>14} {'ratio p95':>9} {'cold p50':>9} {'idle server':>11}",
    ]
    for slug, entry in result["profiles"].items():
        for kind in (hubs.ANALYSIS, hubs.VANILLA):
            r = entry[kind]
            warm = r["warm"]
            cold = r.get("cold", {}).get("total_s", {}).get("p50")
            lines.append(
                f"{slug:<11} {kind:<13} {_s(warm['login_s']['p50']):>6} {_s(warm['spawn_s']['p50']):>6}"
                f" {_s(warm['prepare_s']['p50'], 3):>8} {_s(warm['kernel_s']['p50']):>7}"
                f" {_s(warm['execute_s']['p50'], 3):>6}"
                f" {_s(warm['total_s']['p50']):>6}/{_s(warm['total_s']['p95']):<6}"
                f" {_s(entry['ratio_total_p95']) if kind == hubs.ANALYSIS else '':>10}"
                f" {_s(cold, 1) if cold else '-':>9} {r['idle_server_rss_mib']:>7.0f} MiB"
            )
    peaks = ", ".join(f"{kind} {mib:.0f} MiB" for kind, mib in result["hub_peak_rss_mib"].items())
    lines.append(f"hub peak RSS (VmHWM) over these runs: {peaks}")
    return "\n".join(lines)
