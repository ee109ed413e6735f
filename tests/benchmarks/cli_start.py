#!/usr/bin/env python3
"""The start time of the `analysis-hub` command: how long a quick command takes to answer.

    .venv/bin/python tests/benchmarks/cli_start.py [--runs N]   # alone
    make bench BENCH_ARGS="--only cli"                          # within the suite

Contract: `run(runs)` runs each command `runs` times (after one unmeasured
warm-up, so the page cache holds the files) as a fresh process, the way a
user types it (the virtual environment's `analysis-hub` script), and returns
a JSON-ready dict: per command its wall time (start to exit) and the CPU
time it used (user + system, from the kernel's accounting of the child; it
varies less than wall time on a busy machine), as summaries. `format_table`
renders it. The target is a median under 0.5 s (issue 16).

The commands: `--help`; `profiles list` with the repository's settings
file and catalog; `pipelines runs TEAM/NAME` against a STAND-IN for the
pipelines service: a loopback HTTP responder in this process that answers
every request with an empty list, so what is measured is the command's own
start, its request and its output, not the service. `python -c pass` is
the floor: the interpreter's own start on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from stats import fmt as _s
from stats import summarize

REPO = Path(__file__).resolve().parents[2]
TARGET_S = 0.5


class _EmptyList(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"[]"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def analysis_hub_command() -> list[str]:
    script = Path(sys.executable).parent / "analysis-hub"
    return [str(script)] if script.exists() else [sys.executable, "-m", "analysis_hub.cli"]


def commands(service_url: str) -> dict[str, list[str]]:
    hub = analysis_hub_command()
    pipeline = "data-team/daily"
    return {
        "python -c pass (floor)": [sys.executable, "-c", "pass"],
        "--help": [*hub, "--help"],
        "profiles list": [*hub, "profiles", "list", "--config", str(REPO / "analysis-hub.yaml")],
        "pipelines runs": [*hub, "pipelines", "runs", pipeline, "--url", service_url, "--token", "x"],
    }


def time_once(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run of `argv`; raises if it fails."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read().decode(errors="replace")
    process.stderr.close()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {process.returncode}: {stderr[-500:]}")
    return wall, usage.ru_utime + usage.ru_stime


def run(runs: int = 10) -> dict:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EmptyList)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        results = {}
        for name, argv in commands(f"http://127.0.0.1:{server.server_address[1]}/").items():
            time_once(argv)  # warm-up: files into the page cache, .pyc files written
            samples = [time_once(argv) for _ in range(runs)]
            results[name] = {
                "argv": argv,
                "wall_s": summarize(wall for wall, _ in samples),
                "cpu_s": summarize(cpu for _, cpu in samples),
            }
    finally:
        server.shutdown()
        server.server_close()
    return {"runs": runs, "target_s": TARGET_S, "commands": results}


def targets(result: dict) -> list[tuple[str, float]]:
    """(command, median wall seconds) for every analysis-hub command (the floor is context)."""
    return [
        (name, entry["wall_s"]["p50"])
        for name, entry in result["commands"].items()
        if not name.startswith("python ")
    ]


def format_table(result: dict) -> str:
    lines = [
        f"command start: {result['runs']} runs each after a warm-up; seconds"
        f" (target: median wall under {result['target_s']} s)",
        f"{'command':<24} {'wall p50':>8} {'wall p95':>8} {'cpu p50':>8}",
    ]
    for name, entry in result["commands"].items():
        wall, cpu = entry["wall_s"], entry["cpu_s"]
        lines.append(f"{name:<24} {_s(wall['p50'], 3):>8} {_s(wall['p95'], 3):>8} {_s(cpu['p50'], 3):>8}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="measured runs per command")
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON")
    args = parser.parse_args()
    result = run(args.runs)
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    missed = [name for name, p50 in targets(result) if p50 is None or p50 >= TARGET_S]
    print(f"load average: {[round(x, 2) for x in os.getloadavg()]}")
    if missed:
        print(f"target missed: {', '.join(missed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
