#!/usr/bin/env python3
"""Time to a working notebook, per profile: spawn request -> ready -> first result.

    .venv/bin/python tests/benchmarks/run.py [--runs N] [--cold] [--profiles a,b]

Starts a real hub (`analysis-hub up`, proxy, culler) on loopback and, for each
profile, measures over N runs: the spawn request until the server is ready,
then a kernel start until `1+1` evaluates. `--cold` first spawns each profile
against an empty environment folder, so its first run includes the
environment build (downloads included). Prints a table and writes
tests/benchmarks/results/spawn.json. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import make_workdir, start_hub
from kernels import run_code, start_kernel

OPTIONS = {
    "pyspark": {"profile": "pyspark"},
    "pytorch": {"profile": "pytorch", "accelerator": "cpu"},  # no GPU on the benchmark machine
    "tensorflow": {"profile": "tensorflow"},
}
RESULTS = Path(__file__).resolve().parent / "results"


def measure_once(user, options: dict) -> dict:
    started = time.monotonic()
    response = user.start(options)
    assert response.status_code in (201, 202), response.text
    user.wait_ready()
    ready = time.monotonic()
    kernel = start_kernel(user)
    assert run_code(user, "print(1+1)", kernel).strip() == "2"
    result = time.monotonic()
    user.stop()
    return {"ready_s": ready - started, "first_result_s": result - started}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cold", action="store_true", help="include a first-build run per profile")
    parser.add_argument("--profiles", default=",".join(OPTIONS))
    args = parser.parse_args()

    overrides = {}
    if args.cold:
        cold_envs = make_workdir() / "envs"
        overrides["local"] = {"envs_dir": str(cold_envs)}
    hub = start_hub(**overrides)
    report = {
        "machine": f"{platform.node()} {platform.machine()} {platform.python_version()}",
        "profiles": {},
    }
    try:
        alice = hub.user("alice")
        for slug in args.profiles.split(","):
            entry = {}
            if args.cold:
                entry["first_build"] = measure_once(alice, OPTIONS[slug])
            warm = [measure_once(alice, OPTIONS[slug]) for _ in range(args.runs)]
            for key in ("ready_s", "first_result_s"):
                values = [run[key] for run in warm]
                entry[f"warm_{key}"] = {
                    "p50": statistics.median(values),
                    "p95": percentile(values, 0.95),
                    "runs": values,
                }
            report["profiles"][slug] = entry
    finally:
        hub.stop()

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "spawn.json").write_text(json.dumps(report, indent=2))
    print(f"{'profile':<11} {'first build ready':>18} {'warm ready p50/p95':>20} {'warm 1+1 p50/p95':>18}")
    for slug, entry in report["profiles"].items():
        cold = entry.get("first_build", {}).get("ready_s")
        ready, first = entry["warm_ready_s"], entry["warm_first_result_s"]
        print(
            f"{slug:<11} {(f'{cold:.1f} s' if cold else '-'):>18}"
            f" {ready['p50']:>9.2f}/{ready['p95']:.2f} s {first['p50']:>8.2f}/{first['p95']:.2f} s"
        )
    print(f"written: {RESULTS / 'spawn.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
