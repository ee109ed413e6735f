"""What the workflow unit tests share: the three-step pyspark → tensorflow → pytorch workflow of the
issue (its notebooks and pipeline.yaml), an approver, and readers of a run's step rows."""

from __future__ import annotations

import json

import yaml
from analysis_hub.pipelines.access import Caller
from analysis_hub.pipelines.store.models import AuditEvent, Run, StepRun
from notebooks import make_notebook

DAVE = Caller("dave", frozenset({"data-team", "ml-leads"}))  # a member of the approver group

PREPARE_NB = make_notebook("record('rows', rows)", parameters="rows = 10")
TRAIN_NB = make_notebook("record('accuracy', 0.9)", parameters="epochs = 1\nprepare_rows = 0")
PUBLISH_NB = make_notebook("print(train_accuracy)", parameters="train_accuracy = 0.0")
NOTEBOOKS = {"prepare.ipynb": PREPARE_NB, "train.ipynb": TRAIN_NB, "publish.ipynb": PUBLISH_NB}

PREPARE = {"name": "prepare", "notebook": "prepare.ipynb", "profile": "pyspark", "parameters": {"rows": 1000}}
TRAIN = {
    "name": "train",
    "notebook": "train.ipynb",
    "profile": "tensorflow",
    "depends_on": ["prepare"],
    "when": "prepare.rows > 0",
}
PUBLISH = {
    "name": "publish",
    "notebook": "publish.ipynb",
    "profile": "pytorch",
    "choices": {"accelerator": "cpu"},  # this machine has no GPU
    "depends_on": ["train"],
    "when": "train.accuracy >= 0.5",
}
THREE = [PREPARE, TRAIN, PUBLISH]
REVIEW = {"name": "review", "kind": "approval", "approvers": "ml-leads", "depends_on": ["train"]}
GATED = [PREPARE, TRAIN, REVIEW, {**PUBLISH, "depends_on": ["review"]}]


def spec_text(steps: list[dict]) -> str:
    return yaml.safe_dump({"steps": steps}, sort_keys=False)


async def published_workflow(
    service, caller, steps=THREE, name="flow", deploy=None, team="data-team", notebooks=NOTEBOOKS
) -> dict:
    """A workflow version of `team/name` from `steps` and the three notebooks, deployed with
    `deploy` unless it is None."""
    version = await service.versions.publish_workflow(
        caller, team, name, spec_text(steps), {f: json.dumps(nb) for f, nb in notebooks.items()}
    )
    if deploy is not None:
        await service.deploy(caller, team, name, deploy)
    return version


def step_rows(service, run_id: int) -> dict[str, StepRun]:
    with service.sessions() as db:
        return {r.step: r for r in db.get(Run, run_id).steps}


def run_row(service, run_id: int) -> Run:
    with service.sessions() as db:
        return db.get(Run, run_id)


def audit_actions(service, name: str = "flow") -> list[tuple[str, str]]:
    with service.sessions() as db:
        return [
            (e.actor, e.action) for e in db.query(AuditEvent).filter_by(pipeline=name).order_by(AuditEvent.id)
        ]
