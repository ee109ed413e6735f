"""`analysis-hub usage --csv` reports server and pipeline hours, reserved CPU and memory, and GPUs.

One hub (`analysis-hub up`, local backend, no culler). alice (data-team) runs
a tensorflow server and bob (gpu-team) a pyspark one for a few seconds; the
hub is stopped and started again while both run (their usage sessions stay
open across the restart); then both are stopped and alice runs a pipeline
once. The command's rows must match what the test saw, within the time the
requests took and the CSV's rounding (4 decimals of an hour, 0.36 s).
"""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from datetime import datetime

import pytest
from analysis_hub.catalog import load_catalog
from analysis_hub.selection import select_profile
from conftest import REPO, start_hub
from notebooks import make_notebook
from test_pipelines import deploy, publish, run_and_wait

pytestmark = pytest.mark.integration

ROUNDING = 0.0001  # hours: the CSV's 4 decimals


def usage(hub, by: str) -> dict[tuple[str, str], dict[str, float]]:
    command = [sys.executable, "-m", "analysis_hub.cli", "usage", "--config", str(hub.settings_path)]
    result = subprocess.run(
        [*command, "--since", "1h", "--by", by, "--csv"], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(result.stdout.splitlines()))
    return {(r[by], r["kind"]): {k: float(v) for k, v in r.items() if k not in (by, "kind")} for r in rows}


def reserved(profile: str, groups: set[str]) -> tuple[float, float, int]:
    r = select_profile(
        load_catalog(REPO / "profiles", REPO / "images"), groups, {"profile": profile}
    ).resources
    return float(r.cpu_guarantee), r.memory_guarantee / 2**30, r.gpus


def between(value: float, low_seconds: float, high_seconds: float) -> bool:
    return low_seconds / 3600 - ROUNDING <= value <= high_seconds / 3600 + ROUNDING


def test_usage_of_servers_across_a_hub_restart_and_of_a_pipeline_run():
    """Each user's server-hours lie between the time it was surely running and the time it may
    have run; CPU, memory and GPU hours are those hours times the profile's guarantees; the
    pipeline run counts its own hours; a restart in the middle loses nothing."""
    hub = start_hub(culler={"enabled": False})
    hub.api = f"{hub.url}/services/pipelines/api"  # test_pipelines' helpers call it
    try:
        alice, bob = hub.user("alice"), hub.user("bob")
        requested = time.time()
        for user, profile in ((alice, "tensorflow"), (bob, "pyspark")):
            assert user.start({"profile": profile}).status_code in (201, 202)
        alice.wait_ready()
        bob.wait_ready()
        ready = time.time()
        hub.stop(servers_too=False)
        hub.start()
        alice, bob = hub.user("alice"), hub.user("bob")
        assert alice.model()["servers"][""]["ready"], "the server survives the hub restart"
        stopping = time.time()
        alice.stop()
        bob.stop()
        alice.wait_stopped()
        bob.wait_stopped()
        stopped = time.time()

        publish(hub, alice, "data-team/usage", make_notebook("print(n)"))
        deploy(hub, alice, "data-team/usage")
        run = run_and_wait(hub, alice, "data-team/usage")
        assert run["status"] == "succeeded", run

        by_user = usage(hub, "user")
        for name, profile, team in (("alice", "tensorflow", "data-team"), ("bob", "pyspark", "gpu-team")):
            row = by_user[(name, "server")]
            assert between(row["hours"], stopping - ready, stopped - requested), (name, row)
            cpu, memory_gib, gpus = reserved(profile, {team})
            assert row["cpu_hours"] == pytest.approx(row["hours"] * cpu, abs=2 * ROUNDING)
            assert row["memory_gib_hours"] == pytest.approx(row["hours"] * memory_gib, abs=4 * ROUNDING)
            assert row["gpu_hours"] == gpus * row["hours"]
        started, finished = (datetime.fromisoformat(run[k]) for k in ("started_at", "finished_at"))
        run_seconds = (finished - started).total_seconds()
        pipeline = by_user[("alice", "pipeline")]
        assert pipeline["hours"] == pytest.approx(run_seconds / 3600, abs=ROUNDING + 1 / 3600)
        assert set(by_user) == {("alice", "server"), ("bob", "server"), ("alice", "pipeline")}

        by_team = usage(hub, "team")
        assert by_team[("data-team", "server")] == by_user[("alice", "server")]
        assert by_team[("gpu-team", "server")] == by_user[("bob", "server")]
        assert by_team[("data-team", "pipeline")] == pipeline
    finally:
        hub.stop()
