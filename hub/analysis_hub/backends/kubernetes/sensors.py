"""Chained triggers on Argo Events: "after another pipeline" as a Sensor (pure).

Contract:
- `sensor_for(upstream_team, upstream_pipeline, on, template)` is an Argo
  Events `Sensor` that submits a Workflow from the downstream `template`
  when a run of the upstream pipeline ends with an outcome `on` allows (the
  service's own rule, `pipelines.chains.OUTCOMES`), read from the label
  `analysis-hub/outcome` that the service writes on a finished run's
  Workflow (`OUTCOME_LABEL`: dag.py's run status, which Argo's phase can't
  tell). The submitted Workflow's name
  ends with the upstream Workflow's uid, so the repeated events of one
  upstream run start one chained run. Its events come from
  `workflow_event_source(namespace)`: an `EventSource` watching the
  namespace's Workflows. `outcome_patch(status)` is the merge patch that
  labels a finished run's Workflow with its outcome.

The pipelines service is the one scheduler of chained runs (consent, loop
guards, exactly once, the audit: `pipelines.chains`); a Sensor is the same
chain written for Argo Events (`GET .../argo`), for a cluster that runs
chains without the service. Applied beside the service's own chain, it would
start each chained run twice.
"""

from __future__ import annotations

import json

from ...pipelines.chains import OUTCOMES
from .workflows import GROUP, LABEL_PREFIX, PIPELINE_RUN_LABEL, VERSION, label_value, object_name

# On a finished run's Workflow, written by the service: the run's status as dag.run_status says.
OUTCOME_LABEL = LABEL_PREFIX + "outcome"
EVENT_SOURCE, EVENT_NAME = "analysis-hub-workflows", "workflows"


def workflow_event_source(namespace: str, name: str = EVENT_SOURCE) -> dict:
    """The Argo Events `EventSource` the chain Sensors listen to: updates of the namespace's Workflows."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "EventSource",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "resource": {
                EVENT_NAME: {
                    "namespace": namespace,
                    "group": GROUP,
                    "version": VERSION,
                    "resource": "workflows",
                    # Every update: the Sensors' filters keep a finished run's with its outcome
                    # (Argo Events' label filter has no "exists" test).
                    "eventTypes": ["UPDATE"],
                }
            }
        },
    }


def sensor_for(
    upstream_team: str,
    upstream_pipeline: str,
    on: str,
    template: str,
    service_account: str = "analysis-hub-chains",
    event_source: str = EVENT_SOURCE,
) -> dict:
    """The Sensor that starts a Workflow from `template` after each run of the upstream pipeline
    whose outcome `on` (success | failure | any) allows; `service_account` may create Workflows."""
    if on not in OUTCOMES:
        raise ValueError(f"after_on: {on!r} is not one of {', '.join(OUTCOMES)}")
    labels = "body.metadata.labels."
    filters = [
        (labels + LABEL_PREFIX + "team", [label_value(upstream_team)]),
        (labels + LABEL_PREFIX + "pipeline", [label_value(upstream_pipeline)]),
        (labels + OUTCOME_LABEL, list(OUTCOMES[on])),
    ]
    dependency = "upstream"
    prefix = object_name(template, limit=26) + "-"  # + the upstream Workflow's uid (36): at most 63
    workflow = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Workflow",
        "metadata": {
            "name": prefix,
            "labels": {**PIPELINE_RUN_LABEL, LABEL_PREFIX + "chained": "true"},
            "annotations": {LABEL_PREFIX + "after": f"{upstream_team}/{upstream_pipeline}"},
        },
        "spec": {"workflowTemplateRef": {"name": template}},
    }
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Sensor",
        "metadata": {"name": object_name(f"{template}-after-{upstream_team}-{upstream_pipeline}")},
        "spec": {
            "template": {"serviceAccountName": service_account},
            "dependencies": [
                {
                    "name": dependency,
                    "eventSourceName": event_source,
                    "eventName": EVENT_NAME,
                    "filters": {
                        "data": [{"path": _gjson(p), "type": "string", "value": v} for p, v in filters]
                    },
                }
            ],
            "triggers": [
                {
                    "template": {
                        "name": "start-run",
                        "argoWorkflow": {
                            "operation": "submit",
                            # inline: the Workflow as text, which Argo Events parses (hera's
                            # models of Argo Events carry text exactly; a `resource` they don't).
                            "source": {"inline": json.dumps(workflow, indent=2)},
                            "parameters": [
                                {
                                    "src": {"dependencyName": dependency, "dataKey": "body.metadata.uid"},
                                    "dest": "metadata.name",
                                    "operation": "append",
                                }
                            ],
                        },
                    }
                }
            ],
        },
    }


def _gjson(path: str) -> str:
    """A gjson path (Argo Events' filters): the dots inside a label's name escaped."""
    head, _, label = path.partition("labels.")
    return head + "labels." + label.replace(".", "\\.") if label else path


def outcome_patch(status: str) -> dict:
    """The Workflow's label for its run's final status (dag.run_status's, or a single notebook's)."""
    return {"metadata": {"labels": {OUTCOME_LABEL: label_value(status)}}}
