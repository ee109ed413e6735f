"""A real Prometheus scrapes the hub and the pipelines service, and PromQL gives the expected numbers.

One hub (`analysis-hub up`, local backend, culler timeout 15 s) and Debian's
`prometheus` on loopback, scraping `/hub/metrics` and
`/services/pipelines/metrics` every second with an admin's token limited to
`read:metrics`. The scenario, run once for the module: alice (data-team) and
bob (gpu-team) start servers of two profiles; carol starts a profile whose
environment can't build (its lock file names a package that doesn't exist);
the catalog gets a broken file; alice runs a pipeline that succeeds, one that
fails twice, and one on a cron schedule; then the culler stops the idle servers.
"""

from __future__ import annotations

import shutil
import time

import pytest
import requests
import yaml
from analysis_hub.metrics import exported_names
from conftest import REPO, make_workdir, start_hub
from harness import widen_idle_timeouts
from notebooks import make_notebook
from prometheus import RunningPrometheus
from test_pipelines import deploy, publish, run_and_wait

pytestmark = pytest.mark.integration

CULL_TIMEOUT, CULL_EVERY = 15, 5
BROKEN = "this-package-does-not-exist-analysis-hub==0.0.0"


@pytest.fixture(scope="module")
def hub():
    workdir = make_workdir()
    catalog, images = workdir / "catalog", workdir / "images"
    shutil.copytree(REPO / "profiles", catalog)
    shutil.copytree(REPO / "images", images)
    (images / "broken").mkdir()
    (images / "broken" / "image.yaml").write_text("display_name: Broken\n")
    (images / "broken" / "requirements.txt").write_text(BROKEN + "\n")
    broken = {"slug": "broken", "display_name": "Broken", "image": "broken", "allowed_groups": []}
    (catalog / "broken.yaml").write_text(yaml.safe_dump(broken))
    # pyspark servers idle for 30 minutes by default; bob's chooses CULL_TIMEOUT to be culled here.
    widen_idle_timeouts(catalog, "pyspark", CULL_TIMEOUT)
    running = start_hub(
        workdir,
        catalog=str(catalog),
        images_dir=str(images),
        culler={"enabled": True, "timeout": CULL_TIMEOUT, "every": CULL_EVERY},
    )
    running.catalog = catalog
    running.api = f"{running.url}/services/pipelines/api"  # test_pipelines' helpers call it
    yield running
    running.stop()


@pytest.fixture(scope="module")
def metrics_token(hub) -> str:
    admin = hub.user("admin")
    r = admin.api.post(admin.url("/users/admin/tokens"), json={"scopes": ["read:metrics"], "note": "scrape"})
    assert r.status_code == 201, r.text
    return r.json()["token"]


@pytest.fixture(scope="module")
def prometheus(hub, metrics_token):
    jobs = {
        "hub": (f"{hub.url}/hub/metrics", metrics_token),
        "pipelines": (f"{hub.url}/services/pipelines/metrics", metrics_token),
    }
    running = RunningPrometheus(hub.workdir / "prometheus", jobs)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def servers(hub, prometheus):
    """alice (tensorflow) and bob (pyspark) running; what Prometheus said while they ran."""
    alice, bob = hub.user("alice"), hub.user("bob")
    for user, options in (
        (alice, {"profile": "tensorflow"}),
        (bob, {"profile": "pyspark", "idle_timeout": CULL_TIMEOUT}),
    ):
        assert user.start(options).status_code in (201, 202)
    for user in (alice, bob):
        user.wait_ready()
    running = "analysis_hub_running_servers{{profile='{}',team='{}',backend='local'}}"
    return {
        "alice": prometheus.wait_for(running.format("tensorflow", "data-team"), lambda v: v == 1),
        "bob": prometheus.wait_for(running.format("pyspark", "gpu-team"), lambda v: v == 1),
    }


@pytest.fixture(scope="module")
def scenario(hub, prometheus, servers):
    """Everything after the servers started: a failed spawn, a broken catalog, pipeline runs, culls."""
    (hub.catalog / "zz-broken.yaml").write_text("slug: [not, a, profile\n")
    carol = hub.user("carol")
    # 500 when the build fails within JupyterHub's slow-spawn wait, else 202 and fails later
    assert carol.start({"profile": "broken"}).status_code in (202, 500)
    carol.wait_stopped(timeout=300)
    alice = hub.user("alice")
    publish(hub, alice, "data-team/ok", make_notebook("print(greeting * n)"))
    publish(hub, alice, "data-team/bad", make_notebook("1/0"))
    publish(hub, alice, "data-team/nightly", make_notebook("print(n)"))
    deploy(hub, alice, "data-team/ok")
    deploy(hub, alice, "data-team/bad")
    deploy(hub, alice, "data-team/nightly", trigger="cron", schedule="* * * * *")
    runs = [run_and_wait(hub, alice, "data-team/ok")]
    runs += [run_and_wait(hub, alice, "data-team/bad") for _ in range(2)]
    assert [r["status"] for r in runs] == ["succeeded", "failed", "failed"], runs
    for name in ("alice", "bob"):
        hub.user(name).wait_stopped(timeout=CULL_TIMEOUT + 6 * CULL_EVERY + 60)
    return runs


def test_metrics_endpoints_need_the_read_metrics_scope(hub, metrics_token):
    """Both endpoints answer a token with read:metrics, and refuse none or a user's ordinary token;
    the hub's state metrics are there before any server started."""
    alice = hub.user("alice")
    for path in ("/hub/metrics", "/services/pipelines/metrics"):
        assert requests.get(hub.url + path, timeout=10).status_code == 403, path
        assert alice.api.get(hub.url + path, timeout=10).status_code == 403, path
        token = {"Authorization": f"token {metrics_token}"}
        scraped = requests.get(hub.url + path, headers=token, timeout=10)
        assert scraped.status_code == 200, path
        # before any spawn: the hub's state metrics exist from its start
        state = "analysis_hub_gpus{" if path == "/hub/metrics" else "analysis_hub_pipeline_unfinished_runs{"
        assert state in scraped.text, path


def test_running_servers_by_profile_team_and_backend(servers):
    """While alice and bob run, Prometheus counts one server per (profile, team, backend)."""
    assert servers == {"alice": 1, "bob": 1}


def test_spawns_failures_culls_and_catalog(prometheus, scenario):
    """Each successful spawn is timed per phase, the failed one is counted with its reason, the
    culler's stops count as idle culls, and a broken catalog as a rejected reload."""
    for profile in ("tensorflow", "pyspark"):
        assert prometheus.value(f"analysis_hub_spawn_duration_seconds_count{{profile='{profile}'}}") == 1
        for phase in ("environment", "start", "answer"):
            count = f"analysis_hub_spawn_phase_duration_seconds_count{{profile='{profile}',phase='{phase}'}}"
            assert prometheus.value(count) == 1, count
    failed = "analysis_hub_spawn_failures_total{profile='broken',reason='environment_build'}"
    assert prometheus.value(failed) == 1
    assert prometheus.value("analysis_hub_environment_builds_total{image='broken',result='failed'}") == 1
    assert prometheus.wait_for("analysis_hub_culls_total{reason='idle'}", lambda v: v >= 2) >= 2
    assert prometheus.wait_for("sum(analysis_hub_running_servers) or vector(0)", lambda v: v == 0) == 0
    assert prometheus.value("analysis_hub_catalog_reloads_total{job='hub',result='rejected'}") == 1
    assert prometheus.value("analysis_hub_gpus{state='free'}") is not None


def test_pipeline_runs_failures_and_schedule(prometheus, scenario):
    """A success and two failures are counted and timed per pipeline; the failing pipeline shows two
    failures in a row; the cron pipeline's first run shows its schedule lag."""
    runs = "analysis_hub_pipeline_runs_total{{team='data-team',pipeline='{}',status='{}'}}"
    assert prometheus.wait_for(runs.format("ok", "succeeded"), lambda v: v == 1) == 1
    assert prometheus.wait_for(runs.format("bad", "failed"), lambda v: v == 2) == 2
    assert prometheus.value("analysis_hub_pipeline_run_duration_seconds_count{pipeline='bad'}") == 2
    assert prometheus.value("analysis_hub_pipeline_consecutive_failures{pipeline='bad'}") == 2
    assert prometheus.value("analysis_hub_pipeline_consecutive_failures{pipeline='ok'}") == 0
    last = prometheus.value("analysis_hub_pipeline_last_success_timestamp_seconds{pipeline='ok'}")
    assert time.time() - 600 < last <= time.time()
    assert prometheus.value("analysis_hub_pipeline_unfinished_runs{status='queued'}") is not None
    lag = prometheus.wait_for(
        "analysis_hub_pipeline_schedule_lag_seconds_count{pipeline='nightly'}", lambda v: v >= 1, within=90
    )
    assert lag >= 1


def test_prometheus_saw_every_exported_metric(prometheus, scenario):
    """Every metric metrics.py defines reached Prometheus in this scenario (what the chart's
    dashboard and alerts may name), from targets that were up all along."""
    prometheus.wait_for(
        "count(analysis_hub_pipeline_schedule_lag_seconds_count)", lambda v: v >= 1, within=90
    )
    assert prometheus.targets() == {"hub": "up", "pipelines": "up"}
    assert exported_names() - prometheus.names() == set()
