"""Generate the chart's Grafana dashboard and Prometheus alert rules from Python.

    python scripts/build_monitoring.py          write helm/analysis-hub/files/monitoring/
    python scripts/build_monitoring.py --check  exit 1 when the files differ from what this builds

The dashboard is built with grafana-foundation-sdk (Grafana's own typed
builders), never written by hand; the alert rules are plain Prometheus rule
groups. Both name only metrics from `analysis_hub.metrics` (the unit test
checks it, and parses every query with promtool). The chart ships them as a
ConfigMap with the Grafana sidecar's label and a PrometheusRule.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "helm" / "analysis-hub" / "files" / "monitoring"
DASHBOARD_FILE = OUT / "analysis-hub-dashboard.json"
RULES_FILE = OUT / "analysis-hub-rules.yaml"
WINDOW = "[5m]"

# (title, unit, [(legend, PromQL)]) per panel, in rows of (row title, panels).
PANELS = [
    (
        "Servers",
        [
            ("Running servers by profile and team", "short",
             [("{{profile}} / {{team}}", "sum by (profile, team) (analysis_hub_running_servers)")]),
            ("Spawn time percentiles", "s", [
                (f"p{int(q * 100)} {{{{profile}}}}",
                 f"histogram_quantile({q}, sum by (le, profile) "
                 f"(rate(analysis_hub_spawn_duration_seconds_bucket{WINDOW})))")
                for q in (0.5, 0.9, 0.99)
            ]),
            ("Spawn phases (p90)", "s",
             [("{{phase}}", "histogram_quantile(0.9, sum by (le, phase) "
               f"(rate(analysis_hub_spawn_phase_duration_seconds_bucket{WINDOW})))")]),
            ("Spawn failures by reason", "short",
             [("{{reason}}", "sum by (reason) (increase(analysis_hub_spawn_failures_total[1h]))")]),
            ("Culled servers by reason", "short",
             [("{{reason}}", "sum by (reason) (increase(analysis_hub_culls_total[1h]))")]),
            ("GPUs", "short", [("{{state}}", "sum by (state) (analysis_hub_gpus)")]),
            ("Environment builds and catalog reloads", "short", [
                ("build {{result}}", "sum by (result) (increase(analysis_hub_environment_builds_total[1h]))"),
                ("catalog {{result}}", "sum by (result) (increase(analysis_hub_catalog_reloads_total[1h]))"),
            ]),
        ],
    ),
    (
        "Pipelines",
        [
            ("Pipeline success rate (1 day)", "percentunit",
             [("{{team}}/{{pipeline}}",
               'sum by (team, pipeline) (increase(analysis_hub_pipeline_runs_total{status="succeeded"}[1d]))'
               " / sum by (team, pipeline) "
               '(increase(analysis_hub_pipeline_runs_total{status=~"succeeded|failed"}[1d]))')]),
            ("Pipeline run duration (p90)", "s",
             [("{{team}}/{{pipeline}}", "histogram_quantile(0.9, sum by (le, team, pipeline) "
               "(rate(analysis_hub_pipeline_run_duration_seconds_bucket[1h])))")]),
            ("Runs by status", "short",
             [("{{status}}", "sum by (status) (increase(analysis_hub_pipeline_runs_total[1h]))")]),
            ("Schedule lag (p90)", "s",
             [("{{team}}/{{pipeline}}", "histogram_quantile(0.9, sum by (le, team, pipeline) "
               "(rate(analysis_hub_pipeline_schedule_lag_seconds_bucket[1h])))")]),
            ("Unfinished runs", "short",
             [("{{status}}", "sum by (status) (analysis_hub_pipeline_unfinished_runs)")]),
            ("Failures in a row", "short",
             [("{{team}}/{{pipeline}}",
               "max by (team, pipeline) (analysis_hub_pipeline_consecutive_failures)")]),
            ("Hours since last success", "h",
             [("{{team}}/{{pipeline}}",
               "(time() - max by (team, pipeline) "
               "(analysis_hub_pipeline_last_success_timestamp_seconds)) / 3600")]),
        ],
    ),
]  # fmt: skip

ALERTS = [
    {
        "alert": "AnalysisHubSpawnFailureRate",
        "expr": "sum(rate(analysis_hub_spawn_failures_total[15m]))"
        " / (sum(rate(analysis_hub_spawn_failures_total[15m]))"
        " + sum(rate(analysis_hub_spawn_duration_seconds_count[15m]))) > 0.2",
        "for": "10m",
        "labels": {"severity": "warning"},
        "annotations": {"summary": "More than 20% of server spawns failed in the last 15 minutes"},
    },
    {
        "alert": "AnalysisHubPipelineFailingTwice",
        "expr": "max by (team, pipeline) (analysis_hub_pipeline_consecutive_failures) >= 2",
        "labels": {"severity": "warning"},
        "annotations": {
            "summary": "Pipeline {{ $labels.team }}/{{ $labels.pipeline }} failed twice in a row"
        },
    },
    {
        "alert": "AnalysisHubScheduleLag",
        # Runs that started more than 5 minutes after their fire time: all minus those within 300 s.
        "expr": "sum by (team, pipeline) (increase(analysis_hub_pipeline_schedule_lag_seconds_count[30m]))"
        " - sum by (team, pipeline)"
        ' (increase(analysis_hub_pipeline_schedule_lag_seconds_bucket{le="300"}[30m]))'
        " > 0",
        "labels": {"severity": "warning"},
        "annotations": {
            "summary": "A scheduled run of {{ $labels.team }}/{{ $labels.pipeline }}"
            " started over 5 minutes late"
        },
    },
    {
        "alert": "AnalysisHubGpusExhausted",
        "expr": 'sum(analysis_hub_gpus{state="free"}) == 0 and sum(analysis_hub_gpus) > 0',
        "for": "15m",
        "labels": {"severity": "warning"},
        "annotations": {
            "summary": "Every GPU has been allocated for 15 minutes; GPU spawns and runs are refused"
        },
    },
]  # fmt: skip


def queries() -> list[str]:
    return [expr for _, panels in PANELS for _, _, targets in panels for _, expr in targets]


def dashboard() -> dict:
    from grafana_foundation_sdk.builders import dashboard as db
    from grafana_foundation_sdk.builders import prometheus, timeseries
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.dashboard import DataSourceRef

    source = DataSourceRef(type_val="prometheus", uid="${datasource}")
    board = (
        db.Dashboard("analysis-hub")
        .uid("analysis-hub")
        .tags(["analysis-hub", "jupyterhub"])
        .refresh("1m")
        .time("now-24h", "now")
        .with_variable(db.DatasourceVariable("datasource").label("Data source").type("prometheus"))
    )
    for row, panels in PANELS:
        board = board.with_row(db.Row(row))
        for title, unit, targets in panels:
            panel = timeseries.Panel().title(title).unit(unit).datasource(source).height(8).span(8)
            for ref, (legend, expr) in zip("ABCDEFGH", targets, strict=False):
                panel = panel.with_target(prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref))
            board = board.with_panel(panel)
    return json.loads(JSONEncoder(sort_keys=True, indent=2).encode(board.build()))


def rules() -> dict:
    return {"groups": [{"name": "analysis-hub", "rules": ALERTS}]}


def rendered() -> dict[Path, str]:
    return {
        DASHBOARD_FILE: json.dumps(dashboard(), indent=1, sort_keys=True) + "\n",
        RULES_FILE: "# Generated by scripts/build_monitoring.py; edit that file.\n"
        + yaml.safe_dump(rules(), sort_keys=False, width=1000),
    }


def main(argv: list[str]) -> int:
    stale = [path for path, text in rendered().items() if not path.exists() or path.read_text() != text]
    if "--check" in argv:
        for path in stale:
            print(
                f"{path.relative_to(REPO)} is stale: run python scripts/build_monitoring.py", file=sys.stderr
            )
        return 1 if stale else 0
    OUT.mkdir(parents=True, exist_ok=True)
    for path, text in rendered().items():
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
