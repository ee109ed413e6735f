"""The chart's dashboard, monitors and alert rules: generated, rendered, parsed by Prometheus's promtool.

The dashboard and rules are built by scripts/build_monitoring.py
(grafana-foundation-sdk) into helm/analysis-hub/files/monitoring/ and
rendered by the real Helm engine. Every query is parsed by `promtool`
(Debian's prometheus package) and names only metrics analysis-hub exports:
`metrics.exported_names()`, every one of which the Prometheus round trip
(tests/integration/test_metrics.py) sees scraped.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest
import yaml
from analysis_hub.metrics import exported_names
from kube_support import find, render_chart
from unit_support import REPO

sys.path.insert(0, str(REPO / "scripts"))
import build_monitoring

PROMTOOL = shutil.which("promtool")
ALL_ON = {"monitoring": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}}}


def promtool_check_rules(tmp_path, groups: dict) -> subprocess.CompletedProcess:
    assert PROMTOOL, "promtool is missing: run scripts/install-system-deps.sh"
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(groups))
    return subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True)


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\banalysis_hub_\w+", expr))


def test_the_committed_dashboard_and_rules_are_what_the_generator_builds():
    """files/monitoring/ is build_monitoring.py's output, not hand-edited."""
    assert build_monitoring.main(["--check"]) == 0


def test_the_dashboard_ships_as_a_configmap_with_the_grafana_sidecar_label():
    """By default the chart renders the dashboard's JSON in a ConfigMap the sidecar picks up,
    and no custom resources (the Prometheus operator may be absent)."""
    manifests = render_chart()
    configmap = find(manifests, "ConfigMap", "analysis-hub-dashboards")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(configmap["data"]["analysis-hub.json"]) == build_monitoring.dashboard()
    assert not [m for m in manifests if m["apiVersion"].startswith("monitoring.coreos.com")]


def test_service_monitors_scrape_both_endpoints_with_the_token_secret():
    """Enabled, a ServiceMonitor per endpoint: the hub's /hub/metrics on z2jh's hub Service and
    the pipelines service's metrics path, each with the Bearer token from the named Secret."""
    manifests = render_chart(ALL_ON)
    hub = find(manifests, "ServiceMonitor", "analysis-hub-hub")["spec"]
    pipelines = find(manifests, "ServiceMonitor", "analysis-hub-pipelines")["spec"]
    assert hub["selector"]["matchLabels"]["component"] == "hub"
    assert hub["endpoints"][0]["path"] == "/hub/metrics"
    assert pipelines["endpoints"][0]["path"] == "/services/pipelines/metrics"
    secret = {"name": "analysis-hub-metrics-token", "key": "token"}
    for spec in (hub, pipelines):
        assert spec["endpoints"][0]["authorization"] == {"type": "Bearer", "credentials": secret}


def test_the_rendered_alert_rules_pass_promtool(tmp_path):
    """The PrometheusRule's groups are valid Prometheus rules with the four promised alerts."""
    rule = find(render_chart(ALL_ON), "PrometheusRule", "analysis-hub")
    result = promtool_check_rules(tmp_path, rule["spec"])
    assert result.returncode == 0, result.stdout + result.stderr
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert alerts == {
        "AnalysisHubSpawnFailureRate",
        "AnalysisHubPipelineFailingTwice",
        "AnalysisHubScheduleLag",
        "AnalysisHubGpusExhausted",
    }


def test_every_panel_query_parses_as_promql(tmp_path):
    """Each dashboard query, as a recording rule, passes promtool (which parses its PromQL)."""
    board = build_monitoring.dashboard()
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    assert len(exprs) == len(build_monitoring.queries()) >= 14
    rules = [{"record": f"analysis_hub:panel_{i}", "expr": e} for i, e in enumerate(exprs)]
    result = promtool_check_rules(tmp_path, {"groups": [{"name": "panels", "rules": rules}]})
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "expr",
    build_monitoring.queries() + [a["expr"] for a in build_monitoring.ALERTS],
)
def test_queries_name_only_exported_metrics(expr):
    """A dashboard or alert query names only series analysis-hub exports (and at least one)."""
    names = metric_names(expr)
    assert names and names <= exported_names(), names - exported_names()


def test_the_dashboard_answers_the_operators_questions():
    """Servers by profile and team, spawn time, culls, GPUs, pipeline success and duration."""
    exprs = " ".join(build_monitoring.queries())
    for metric in (
        "analysis_hub_running_servers",
        "analysis_hub_spawn_duration_seconds_bucket",
        "analysis_hub_culls_total",
        "analysis_hub_gpus",
        "analysis_hub_pipeline_runs_total",
        "analysis_hub_pipeline_run_duration_seconds_bucket",
    ):
        assert metric in exprs, metric


# The Prometheus operator's monitoring.coreos.com/v1 fields our resources use, with their types
# (written from the operator's API reference; every other field of the real CRDs is left out, so
# a misspelled or misplaced field fails here as the API server's schema would prune or refuse it).
DURATION = {
    "type": "string",
    "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$",
}
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
METADATA = {"type": "object", "required": ["name"]}


def closed(properties: dict, required: tuple = ()) -> dict:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
        "required": list(required),
    }


SERVICE_MONITOR = closed(
    {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": METADATA,
        "spec": closed(
            {
                "selector": closed({"matchLabels": STRING_MAP}),
                "endpoints": {
                    "type": "array",
                    "items": closed(
                        {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "interval": DURATION,
                            "authorization": closed(
                                {
                                    "type": {"type": "string"},
                                    "credentials": closed(
                                        {"name": {"type": "string"}, "key": {"type": "string"}}, ("key",)
                                    ),
                                }
                            ),
                        }
                    ),
                },
            },
            ("selector",),
        ),
    },
    ("apiVersion", "kind", "metadata", "spec"),
)
RULE = closed(
    {
        "alert": {"type": "string"},
        "record": {"type": "string"},
        "expr": {"type": ["string", "integer"]},
        "for": DURATION,
        "labels": STRING_MAP,
        "annotations": STRING_MAP,
    },
    ("expr",),
)
PROMETHEUS_RULE = closed(
    {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": METADATA,
        "spec": closed(
            {
                "groups": {
                    "type": "array",
                    "items": closed(
                        {
                            "name": {"type": "string"},
                            "interval": DURATION,
                            "rules": {"type": "array", "items": RULE},
                        },
                        ("name", "rules"),
                    ),
                }
            }
        ),
    },
    ("apiVersion", "kind", "metadata", "spec"),
)


def test_the_custom_resources_use_only_fields_and_types_of_the_operator_v1_api():
    """ServiceMonitors and the PrometheusRule, as rendered, fit monitoring.coreos.com/v1's fields."""
    import jsonschema

    manifests = render_chart(ALL_ON)
    custom = [m for m in manifests if m["apiVersion"].startswith("monitoring.coreos.com")]
    assert sorted(m["kind"] for m in custom) == ["PrometheusRule", "ServiceMonitor", "ServiceMonitor"]
    for manifest in custom:
        schema = SERVICE_MONITOR if manifest["kind"] == "ServiceMonitor" else PROMETHEUS_RULE
        jsonschema.validate(manifest, schema)
    wrong = find(manifests, "ServiceMonitor", "analysis-hub-hub")
    wrong["spec"]["endpoints"][0]["interval"] = "30 seconds"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(wrong, SERVICE_MONITOR)
