"""Benchmark: a pipeline run's overhead over plain papermill, and the schedule's dispatch delay.

    .venv/bin/python tests/benchmarks/pipelines.py [--runs 5] [--ticks 2]

Starts a real hub (`analysis-hub up`, with its pipelines service) on loopback
and publishes a notebook whose one cell sleeps 1 s, on the pyspark profile.

1. Overhead: the same notebook run N times with plain papermill from the
   profile's environment (`<env>/bin/python -m papermill in out`), then N
   times as a pipeline run (`POST .../runs`, timed from the request to the
   run's recorded finish: queueing, git, cgroup, papermill, HTML rendering).
   Target: p50 pipeline / p50 papermill under 1.2.
2. Dispatch delay: deployed on `* * * * *`; for each of the next `--ticks`
   minutes, the delay from the minute boundary to the run's creation.
   Target: under 2 s.
3. Workflow overhead: five trivial steps in a chain (each the same 1 s
   notebook), N times as one workflow run, against the same five notebooks
   run back to back with plain papermill. Target: p50 ratio at most 1.15.
4. Chain start: a pipeline deployed `trigger: after` the one-second one;
   for each of N upstream runs, the time from the upstream run's recorded
   end to the chained run's creation. Target: under 2 s.

Prints a table and writes tests/benchmarks/results/pipelines-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis_hub.runtime.environments import EnvironmentBuilder
from harness import ENVS_DIR, REPO, start_hub
from notebooks import make_notebook

RESULTS = Path(__file__).parent / "results"


def plain_papermill(env: Path, notebook: dict, runs: int) -> list[float]:
    times = []
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "in.ipynb"
        source.write_text(json.dumps(notebook))
        for _ in range(runs):
            started = time.monotonic()
            subprocess.run(
                [
                    str(env / "bin" / "python"),
                    "-m",
                    "papermill",
                    str(source),
                    str(Path(folder) / "out.ipynb"),
                ],
                check=True,
                capture_output=True,
            )
            times.append(time.monotonic() - started)
    return times


def pipeline_runs(user, api: str, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.monotonic()
        run = user.api.post(f"{api}/pipelines/bench/one-second/runs", json={}).json()
        while not run["finished"]:
            time.sleep(0.05)
            run = user.api.get(f"{api}/runs/{run['id']}").json()
        assert run["status"] == "succeeded", run
        times.append(time.monotonic() - started)
    return times


FIVE_STEPS = "steps:\n" + "".join(
    f"  - name: s{i}\n    notebook: step.ipynb\n    profile: pyspark\n"
    + (f"    depends_on: [s{i - 1}]\n" if i > 1 else "")
    for i in range(1, 6)
)


def workflow_runs(user, api: str, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.monotonic()
        run = user.api.post(f"{api}/pipelines/bench/five-steps/runs", json={}).json()
        while not run["finished"]:
            time.sleep(0.05)
            run = user.api.get(f"{api}/runs/{run['id']}").json()
        assert run["status"] == "succeeded" and len(run["steps"]) == 5, run
        times.append(time.monotonic() - started)
        # Between one step's recorded end and the next one's start: the service's own share.
        steps = sorted(run["steps"], key=lambda s: s["started_at"])
        gaps = [(_at(b["started_at"]) - _at(a["finished_at"])).total_seconds() for a, b in pairwise(steps)]
        print(f"workflow run {run['id']}: steps {[s['duration_s'] for s in steps]} s, gaps {gaps} s")
    return times


def chain_delays(user, api: str, runs: int) -> list[float]:
    """From each upstream run's recorded end to its chained run's creation."""
    delays = []
    for _ in range(runs):
        upstream = user.api.post(f"{api}/pipelines/bench/one-second/runs", json={}).json()
        chained = None
        while chained is None:
            time.sleep(0.05)
            chained = next(
                (
                    r
                    for r in user.api.get(f"{api}/pipelines/bench/chained/runs").json()
                    if r["upstream_run"] == upstream["id"]
                ),
                None,
            )
        ended = user.api.get(f"{api}/runs/{upstream['id']}").json()["finished_at"]
        delays.append((_at(chained["created_at"]) - _at(ended)).total_seconds())
    return delays


def _at(iso: str) -> datetime:
    return datetime.fromisoformat(iso.rstrip("Z")).replace(tzinfo=UTC)


def dispatch_delays(user, api: str, ticks: int) -> list[float]:
    user.api.put(
        f"{api}/pipelines/bench/one-second/deployment", json={"schedule": "* * * * *"}
    ).raise_for_status()
    seen: set[int] = set()
    delays: list[float] = []
    deadline = time.monotonic() + 70 * ticks + 30
    while len(delays) < ticks and time.monotonic() < deadline:
        for run in user.api.get(f"{api}/pipelines/bench/one-second/runs").json():
            if run["trigger"] == "cron" and run["id"] not in seen:
                seen.add(run["id"])
                created = datetime.fromisoformat(run["created_at"].rstrip("Z")).replace(tzinfo=UTC)
                tick = created.replace(second=0, microsecond=0)
                delays.append((created - tick).total_seconds())
        time.sleep(0.5)
    user.api.put(f"{api}/pipelines/bench/one-second/deployment", json={"paused": True})
    return delays


def summary(values: list[float]) -> dict:
    ordered = sorted(values)
    return {
        "n": len(values),
        "p50": round(statistics.median(ordered), 3),
        "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 3),
        "min": round(ordered[0], 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--ticks", type=int, default=2)
    args = parser.parse_args()
    notebook = make_notebook("import time\ntime.sleep(seconds)", parameters="seconds = 1.0")
    hub = start_hub(auth={"groups": {"bench": ["alice"]}}, hub={"log_level": "INFO"})
    try:
        alice, api = hub.user("alice"), f"{hub.url}/services/pipelines/api"
        published = alice.api.post(
            f"{api}/pipelines/bench/one-second/versions", json={"notebook": notebook, "profile": "pyspark"}
        )
        published.raise_for_status()
        alice.api.put(f"{api}/pipelines/bench/one-second/deployment", json={}).raise_for_status()
        pipeline_runs(alice, api, 1)  # warm-up: builds or checks the environment once
        env = EnvironmentBuilder(ENVS_DIR, REPO / "images").path_for("pyspark")
        plain = plain_papermill(env, notebook, args.runs)
        pipeline = pipeline_runs(alice, api, args.runs)
        delays = dispatch_delays(alice, api, args.ticks)
        step = make_notebook("import time\ntime.sleep(seconds)", parameters="seconds = 1.0")
        alice.api.post(
            f"{api}/pipelines/bench/five-steps/versions",
            json={"spec": FIVE_STEPS, "notebooks": {"step.ipynb": step}},
        ).raise_for_status()
        alice.api.put(f"{api}/pipelines/bench/five-steps/deployment", json={}).raise_for_status()
        plain_five = [sum(plain_papermill(env, notebook, 5)) for _ in range(args.runs)]
        workflow = workflow_runs(alice, api, args.runs)
        alice.api.put(
            f"{api}/pipelines/bench/one-second/deployment", json={"paused": False, "trigger": "manual"}
        )
        alice.api.post(
            f"{api}/pipelines/bench/chained/versions", json={"notebook": notebook, "profile": "pyspark"}
        ).raise_for_status()
        alice.api.put(
            f"{api}/pipelines/bench/chained/deployment",
            json={"after_pipeline": "bench/one-second", "after_on": "any"},
        ).raise_for_status()
        chains = chain_delays(alice, api, args.runs)
    finally:
        hub.stop()
    result = {
        "machine": f"{subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores",
        "plain_papermill_s": summary(plain),
        "pipeline_run_s": summary(pipeline),
        "overhead_ratio_p50": round(statistics.median(pipeline) / statistics.median(plain), 3),
        "dispatch_delay_s": summary(delays) if delays else None,
        "five_papermill_runs_s": summary(plain_five),
        "five_step_workflow_s": summary(workflow),
        "workflow_ratio_p50": round(statistics.median(workflow) / statistics.median(plain_five), 3),
        "chain_start_delay_s": summary(chains),
    }
    print(f"{'':28}{'p50':>8}{'p95':>8}{'n':>4}")
    for name, key in (("plain papermill (s)", "plain_papermill_s"), ("pipeline run (s)", "pipeline_run_s")):
        print(f"{name:28}{result[key]['p50']:>8}{result[key]['p95']:>8}{result[key]['n']:>4}")
    if delays:
        d = result["dispatch_delay_s"]
        print(f"{'schedule dispatch delay (s)':28}{d['p50']:>8}{d['p95']:>8}{d['n']:>4}")
    for name, key in (
        ("5 x papermill (s)", "five_papermill_runs_s"),
        ("5-step workflow (s)", "five_step_workflow_s"),
        ("chain start delay (s)", "chain_start_delay_s"),
    ):
        print(f"{name:28}{result[key]['p50']:>8}{result[key]['p95']:>8}{result[key]['n']:>4}")
    print(f"overhead ratio (p50): {result['overhead_ratio_p50']}  (target < 1.2); dispatch target < 2 s")
    print(f"workflow ratio (p50): {result['workflow_ratio_p50']}  (target <= 1.15); chain start target < 2 s")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"pipelines-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
