"""Every Prometheus metric analysis-hub exports, defined once (prometheus_client).

Contract:
- Names follow JupyterHub's conventions: `analysis_hub_` prefix, snake case,
  `_total` counters, `_seconds` durations, base units. Each metric lives in
  the default registry of the process that records it, and only there: the
  hub's appear at `/hub/metrics` (JupyterHub serves that registry, scope
  `read:metrics`), the pipelines service's at `/services/pipelines/metrics`
  (same scope). The metrics are created unregistered; `register_state(key,
  read)`, which each process calls once for itself ("hub", "pipelines"),
  registers its scrape-time collector and the recorded metrics `RECORDED_BY`
  that process, so neither endpoint advertises the other's families.
- Counters and histograms are recorded where the event happens (spawner,
  environment builder, catalog source, the hub's request log, runs). What is
  a *state* (running servers, GPUs, queued runs, last success) is read at
  scrape time by a collector from the place that already keeps it (the hub's
  spawners, the GPU pool's file, the pipelines database), so a restart of the
  hub or service never makes it wrong.
- Label vocabularies are closed where they can be: `SPAWN_PHASES`,
  `CULL_REASONS`; a server's team is `team_of(groups)`. A state's series
  don't vanish: what was counted once is exported as 0 when there is none of
  it (a stopped profile's running servers, runs waiting at a gate).
- Importing this module is cheap (prometheus_client only): the CLI may import it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

PREFIX = "analysis_hub"
NO_TEAM = "none"
# environment: the local backend's environment build or reuse; start: the backend's
# start() (process, container or pod created); answer: the server's first HTTP answer.
SPAWN_PHASES = ("environment", "start", "answer")
CULL_REASONS = ("idle", "memory_limit")
# Spawns: seconds to minutes (a first environment build or image pull is minutes).
SPAWN_BUCKETS = (0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 120, 300, 600, 1200, float("inf"))
# Pipeline runs: seconds to hours.
RUN_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, float("inf"))


def team_of(groups: Iterable[str]) -> str:
    """A user's team for labels and usage: their first group by name, or `none`."""
    return min(groups, default=NO_TEAM)


# ---- hub -------------------------------------------------------------------

SPAWN_DURATION = Histogram(
    f"{PREFIX}_spawn_duration_seconds",
    "Seconds from a server's start to its first answer, successful spawns",
    ["profile", "backend"],
    buckets=SPAWN_BUCKETS,
    registry=None,
)
SPAWN_PHASE_DURATION = Histogram(
    f"{PREFIX}_spawn_phase_duration_seconds",
    "Seconds per spawn phase: environment (local), start (process/container/pod), answer",
    ["profile", "backend", "phase"],
    buckets=SPAWN_BUCKETS,
    registry=None,
)
SPAWN_FAILURES = Counter(
    f"{PREFIX}_spawn_failures_total",
    "Spawns that failed, by reason (bad_request, gpus_unavailable, start_error, timeout, answer)",
    ["profile", "backend", "reason"],
    registry=None,
)
CULLS = Counter(
    f"{PREFIX}_culls_total",
    "Servers stopped for their users, by reason (idle, memory_limit)",
    ["reason"],
    registry=None,
)
ENVIRONMENT_BUILDS = Counter(
    f"{PREFIX}_environment_builds_total",
    "Environment builds (local backend), by result",
    ["image", "result"],
    registry=None,
)
ENVIRONMENT_BUILD_DURATION = Histogram(
    f"{PREFIX}_environment_build_duration_seconds",
    "Seconds an environment build took (local backend), by result",
    ["image", "result"],
    buckets=SPAWN_BUCKETS,
    registry=None,
)
CATALOG_RELOADS = Counter(
    f"{PREFIX}_catalog_reloads_total",
    "Catalog changes seen, by result (applied, rejected)",
    ["result"],
    registry=None,
)

# ---- pipelines service -----------------------------------------------------

PIPELINE_RUNS = Counter(
    f"{PREFIX}_pipeline_runs_total",
    "Pipeline runs that ended, by status (succeeded, failed, skipped...)",
    ["team", "pipeline", "status"],
    registry=None,
)
PIPELINE_RUN_DURATION = Histogram(
    f"{PREFIX}_pipeline_run_duration_seconds",
    "Seconds from a run's first attempt to its end, all attempts",
    ["team", "pipeline", "status"],
    buckets=RUN_BUCKETS,
    registry=None,
)
PIPELINE_SCHEDULE_LAG = Histogram(
    f"{PREFIX}_pipeline_schedule_lag_seconds",
    "Seconds from a scheduled run's fire time to its first attempt",
    ["team", "pipeline"],
    buckets=(0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800, float("inf")),
    registry=None,
)


# Read at scrape time (`register_state`): hub (hub_metrics.hub_state) and service (run_metrics).
RUNNING_SERVERS = f"{PREFIX}_running_servers"
GPUS = f"{PREFIX}_gpus"
PIPELINE_UNFINISHED_RUNS = f"{PREFIX}_pipeline_unfinished_runs"
PIPELINE_LAST_SUCCESS = f"{PREFIX}_pipeline_last_success_timestamp_seconds"
PIPELINE_CONSECUTIVE_FAILURES = f"{PREFIX}_pipeline_consecutive_failures"
STATE_METRICS = (
    RUNNING_SERVERS,
    GPUS,
    PIPELINE_UNFINISHED_RUNS,
    PIPELINE_LAST_SUCCESS,
    PIPELINE_CONSECUTIVE_FAILURES,
)
# What each process records: the service builds environments and reads the catalog too.
RECORDED_BY = {
    "hub": (
        SPAWN_DURATION,
        SPAWN_PHASE_DURATION,
        SPAWN_FAILURES,
        CULLS,
        ENVIRONMENT_BUILDS,
        ENVIRONMENT_BUILD_DURATION,
        CATALOG_RELOADS,
    ),
    "pipelines": (
        PIPELINE_RUNS,
        PIPELINE_RUN_DURATION,
        PIPELINE_SCHEDULE_LAG,
        ENVIRONMENT_BUILDS,
        ENVIRONMENT_BUILD_DURATION,
        CATALOG_RELOADS,
    ),
}
RECORDED_METRICS = tuple(dict.fromkeys(m for metrics in RECORDED_BY.values() for m in metrics))


def exported_names() -> set[str]:
    """Every series name analysis-hub exports (histograms as _bucket/_count/_sum, counters as _total)."""
    names = set(STATE_METRICS)
    for metric in RECORDED_METRICS:
        [family] = metric.describe()
        suffixes = ("_bucket", "_count", "_sum") if family.type == "histogram" else ("_total",)
        names |= {family.name + suffix for suffix in suffixes}
    return names


def count_cull(reason: str) -> None:
    if reason not in CULL_REASONS:
        raise ValueError(f"cull reason {reason!r}: one of {', '.join(CULL_REASONS)}")
    CULLS.labels(reason=reason).inc()


class StateCollector:
    """A scrape-time collector: `read()` yields (name, help, labels, rows of (label values, value))."""

    def __init__(self, read: Callable[[], Iterable[tuple[str, str, list[str], list[tuple]]]]):
        self.read = read

    def collect(self):
        for name, help_text, labels, rows in self.read():
            family = GaugeMetricFamily(name, help_text, labels=labels)
            for values, value in rows:
                family.add_metric([str(v) for v in values], value)
            yield family

    def describe(self):
        return []  # unknown until scraped: keeps registration free of a first read


_registered: set = set()  # keys and metrics registered in this process


def register_state(key: str, read) -> None:
    """Register a scrape-time collector once per process (`key`: which one), and the recorded
    metrics of that process (`RECORDED_BY[key]`, none for another key)."""
    if key in _registered:
        return
    _registered.add(key)
    REGISTRY.register(StateCollector(read))
    for metric in RECORDED_BY.get(key, ()):
        if metric not in _registered:
            _registered.add(metric)
            REGISTRY.register(metric)
