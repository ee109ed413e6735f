"""What each metrics endpoint exports: its own process's families only, and state series that
go to 0 instead of vanishing."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

from analysis_hub.hub_metrics import hub_state
from analysis_hub.metrics import RUNNING_SERVERS
from analysis_hub.pipelines.engine.run_metrics import service_state
from analysis_hub.pipelines.statuses import UNFINISHED
from analysis_hub.pipelines.store.models import open_database
from analysis_hub.runtime.gpus import GpuPool

SCRAPE = "from prometheus_client import REGISTRY, generate_latest; print(generate_latest(REGISTRY).decode())"
HUB = "import analysis_hub.backends.catalog_spawner\n" + SCRAPE
SERVICE = (
    "from analysis_hub.pipelines.engine import run_metrics\n"
    "from analysis_hub.pipelines.store.models import open_database\n"
    "run_metrics.register(open_database('sqlite://'))\n" + SCRAPE
)


def scrape(code: str) -> str:
    """A fresh process's /metrics, after it set itself up as the hub or the service does."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


def test_each_process_exports_its_own_families_and_not_the_others():
    """The hub's registry has the spawn families and none of the pipelines'; the service's the
    reverse (each used to advertise the other's families, with no samples)."""
    hub, service = scrape(HUB), scrape(SERVICE)
    assert "analysis_hub_spawn_duration_seconds" in hub and "analysis_hub_culls_total" in hub
    assert "analysis_hub_pipeline" not in hub, [line for line in hub.splitlines() if "pipeline" in line]
    assert (
        "analysis_hub_pipeline_runs_total" in service and "analysis_hub_pipeline_unfinished_runs" in service
    )
    assert "analysis_hub_spawn" not in service and "analysis_hub_culls_total" not in service


def _app(*servers: tuple[str, str]):
    """A hub with one user per (profile, group) running a ready server."""

    class Spawner(SimpleNamespace):
        ready = True
        backend_name = "local"

    users = [
        SimpleNamespace(spawners={"": Spawner(profile_slug=profile, user_groups={group})})
        for profile, group in servers
    ]
    return SimpleNamespace(users={i: user for i, user in enumerate(users)}), Spawner


def running(families) -> dict:
    [(_, _, _, rows)] = [f for f in families if f[0] == RUNNING_SERVERS]
    return dict(rows)


def test_running_servers_go_to_zero_when_the_last_one_stops():
    """A profile whose servers all stopped is exported with 0 (its series used to vanish)."""
    app, spawner_class = _app(("tensorflow", "data-team"), ("pyspark", "data-team"))
    before = running(hub_state(app, GpuPool([]), spawner_class))
    assert before[("tensorflow", "data-team", "local")] == 1
    app.users.pop(0)  # the tensorflow server stopped
    after = running(hub_state(app, GpuPool([]), spawner_class))
    assert after[("tensorflow", "data-team", "local")] == 0
    assert after[("pyspark", "data-team", "local")] == 1


def test_unfinished_runs_export_every_unfinished_status_even_at_zero():
    """No runs at all: queued, running and waiting are each exported, with 0."""
    families = service_state(open_database("sqlite://"))
    [(_, _, _, rows)] = [f for f in families if f[0].endswith("unfinished_runs")]
    assert dict(rows) == {(status,): 0 for status in UNFINISHED}
