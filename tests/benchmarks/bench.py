#!/usr/bin/env python3
"""The benchmark suite of issue 7: analysis-hub against a vanilla JupyterHub, in one run.

    .venv/bin/python tests/benchmarks/bench.py [--only first,crowd,culling] [options]
    make bench BENCH_ARGS="..."      # the same

1. first: time to first result per profile, warm and cold, and memory
   (first_result.py);
2. crowd: N simulated users at once (crowd.py);
3. culling: one idle-culler sweep over a 10,000-user database (culling.py);
4. cli: the start time of quick `analysis-hub` commands (cli_start.py, issue 16);
5. metrics: what metrics and usage records add to a warm spawn (metrics_cost.py, issue 16).

Every benchmark starts its own hubs on loopback (hubs.py) and stops them,
their servers, Unix users and folders again, also on failure. Prints a table
with the targets met or missed and writes the whole result to
tests/benchmarks/results/bench-<UTC time>.json. Not part of the test suite
(pytest's norecursedirs leaves this folder out).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

import cli_start
import crowd
import culling
import first_result
import hubs
import metrics_cost
import sampling

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_RATIO = 1.2  # warm first result and crowd phases: p95 within 1.2x vanilla
TARGET_SWEEP_S = 5.0  # one culler sweep over 10,000 users
BENCHMARKS = ("first", "crowd", "culling", "cli", "metrics")


def main() -> int:
    args = _parser().parse_args()
    only = args.only.split(",")
    if unknown := set(only) - set(BENCHMARKS):
        sys.exit(f"unknown benchmark(s) {sorted(unknown)}; choose from {', '.join(BENCHMARKS)}")
    # A SIGTERM unwinds like Ctrl-C, so every hub's `finally: hub.stop()` still runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if removed := hubs.remove_leftover_unix_users():
        print(f"removed Unix users an interrupted run left behind: {', '.join(removed)}")
    report: dict = {
        "machine": sampling.machine(),
        "command": " ".join(sys.argv),
        # analysis-hub reads these as settings overrides, e.g. ANALYSIS_HUB_LOCAL__CGROUPS=off
        "settings_from_environment": {k: v for k, v in os.environ.items() if k.startswith("ANALYSIS_HUB_")},
        "results": {},
    }
    started = datetime.now(UTC)
    profiles = args.profiles.split(",")
    if "first" in only:
        print(f"time to first result: {args.runs} warm runs, {args.cold_runs} cold", flush=True)
        report["results"]["first"] = first_result.run(profiles, args.runs, args.cold_runs, args.idle_wait)
    if "crowd" in only:
        sizes = [int(size) for size in args.crowd_sizes.split(",")]
        print(f"crowd: {sizes} users, ramp {args.crowd_ramp} s per 10 users", flush=True)
        plan = crowd.CrowdPlan(profile=profiles[0], ramp_s_per_10=args.crowd_ramp, cells=args.crowd_cells)
        report["results"]["crowd"] = crowd.run(sizes, plan)
    if "culling" in only:
        plan = culling.CullingPlan(
            users=args.cull_users, idle=args.cull_idle, active=args.cull_active, timeout=args.cull_timeout
        )
        print(f"culling: {plan.users} users, {plan.idle} idle and {plan.active} active servers", flush=True)
        report["results"]["culling"] = culling.run(plan)
    if "cli" in only:
        print(f"command start: {args.cli_runs} runs per command", flush=True)
        report["results"]["cli"] = cli_start.run(args.cli_runs)
    if "metrics" in only:
        print(f"metrics' cost: {args.metrics_runs} runs per part", flush=True)
        report["results"]["metrics"] = metrics_cost.run(args.metrics_runs, args.metrics_warm_spawn_s)
    report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["wall_s"] = round((datetime.now(UTC) - started).total_seconds())
    report["targets"] = targets(report["results"])

    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"bench-{started:%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(report, indent=2))
    print()
    print(format_report(report))
    print(f"\nwritten: {path}")
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated: " + ",".join(BENCHMARKS))
    p.add_argument(
        "--profiles", default=",".join(first_result.PROFILE_OPTIONS), help="the crowd uses the first"
    )
    p.add_argument("--runs", type=int, default=5, help="warm runs per profile and hub")
    p.add_argument("--cold-runs", type=int, default=1, help="first-build runs per profile (30-85 s each)")
    p.add_argument(
        "--idle-wait", type=float, default=10, help="seconds a server idles before its RSS is read"
    )
    p.add_argument("--crowd-sizes", default="10,30,100", help="sizes that don't fit in memory are skipped")
    p.add_argument("--crowd-ramp", type=float, default=10, help="seconds of start stagger per 10 users")
    p.add_argument("--crowd-cells", type=int, default=5, help="executions per simulated user")
    p.add_argument("--cull-users", type=int, default=10_000)
    p.add_argument("--cull-idle", type=int, default=1_000)
    p.add_argument("--cull-active", type=int, default=100)
    p.add_argument("--cull-timeout", type=int, default=60, help="the culler's timeout (it sweeps every 10 s)")
    p.add_argument("--cli-runs", type=int, default=10, help="runs per command for the command start times")
    p.add_argument("--metrics-runs", type=int, default=2000, help="runs per part of the metrics' cost")
    p.add_argument(
        "--metrics-warm-spawn-s",
        type=float,
        default=3.0,
        help="warm first-result median to set the cost against",
    )
    return p


def targets(results: dict) -> list[dict]:
    """Issue 7's targets, each with the measured value and met (True/False; None: not measured)."""
    found = []
    for slug, entry in results.get("first", {}).get("profiles", {}).items():
        found.append(
            _at_most(f"warm first result p95, {slug}", "1.2x vanilla", entry["ratio_total_p95"], TARGET_RATIO)
        )
    entry = results.get("crowd", {}).get("sizes", {}).get("30")
    if entry and "skipped" not in entry:
        succeeded = entry[hubs.ANALYSIS]["succeeded"]
        found.append(_check("30-user crowd: users who succeed", "30", succeeded, succeeded == 30))
        for phase, value in entry["ratio_p95"].items():
            found.append(_at_most(f"30-user crowd: {phase[:-2]} p95", "1.2x vanilla", value, TARGET_RATIO))
    if cull := results.get("culling", {}).get(hubs.ANALYSIS):
        users, quiet = f"{results['culling']['plan']['users']:,} users", cull["quiet_sweep_s"]["p50"]
        found.append(_at_most(f"culler sweep, {users}, nothing to cull", "5 s", quiet, TARGET_SWEEP_S))
        culled = f"culler sweep, {users}, culling {cull['culling_sweep_deletes']}"
        found.append(_at_most(culled, "5 s", cull["culling_sweep_s"], TARGET_SWEEP_S))
        active = cull["active_culled_count"]
        found.append(_check("culling: active servers culled", "0", active, active == 0))
        idle, on_time = cull["idle_servers"], cull["idle_stopped_by_deadline"]
        found.append(_check("culling: idle stopped by timeout + every", str(idle), on_time, on_time == idle))
    if cli := results.get("cli"):
        for command, p50 in cli_start.targets(cli):
            found.append(
                _at_most(f"command start p50: {command}", f"{cli_start.TARGET_S} s", p50, cli_start.TARGET_S)
            )
    if cost := results.get("metrics"):
        found.append(_at_most("metrics' cost on a warm spawn", f"{metrics_cost.TARGET}x off", cost["ratio"],
                              metrics_cost.TARGET))  # fmt: skip
    return found


def _check(name: str, limit: str, value, met: bool | None) -> dict:
    return {"target": name, "limit": limit, "value": value, "met": met}


def _at_most(name: str, limit: str, value: float | None, bound: float) -> dict:
    met = None if value is None else value <= bound
    return _check(name, f"<= {limit}", None if value is None else round(value, 2), met)


def format_report(report: dict) -> str:
    m = report["machine"]
    lines = [
        f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']},"
        f" root={m['running_as_root']}; load average {m['load_average_at_start']} at start,"
        f" {report['load_average_at_end']} at end; {report['wall_s']} s"
    ]
    results = report["results"]
    if first := results.get("first"):
        lines += ["", first_result.format_table(first)]
    if crowd_result := results.get("crowd"):
        lines += ["", crowd.format_table(crowd_result)]
    if cull := results.get("culling"):
        lines += ["", culling.format_table(cull)]
    if cli := results.get("cli"):
        lines += ["", cli_start.format_table(cli)]
    if cost := results.get("metrics"):
        lines += ["", metrics_cost.format_table(cost)]
    lines += ["", "targets:"]
    for t in report["targets"]:
        verdict = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
        lines.append(f"  {t['target']:<44} {t['limit']:>17}  measured {t['value']!s:>7}  {verdict}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
