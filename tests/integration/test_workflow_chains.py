"""Workflow specs and chained pipelines over REST, for real (issue 14).

A hub (`workflow_runs.start_workflows_hub`: `analysis-hub up` on the local
backend, with `gpu-only`, a profile only gpu-team may use) is shared by the
module: bad `pipeline.yaml` specs are refused naming file, step and key with
nothing published, and a failed run starts the pipelines chained after it
(real papermill runs), across teams only with the upstream team's consent.
"""

from __future__ import annotations

import pytest
import yaml
from notebooks import make_notebook as notebook
from workflow_runs import FIRST, THIRD, api, start_run, start_workflows_hub, wait_run, wait_runs

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hub():
    running = start_workflows_hub()
    yield running
    running.stop()


def test_a_bad_workflow_spec_is_refused_naming_file_step_and_key_and_nothing_is_published(hub):
    """A cycle, an unknown step in depends_on, an unknown key, a condition on a step that isn't
    upstream, a profile data-team may not use, and a parameter the notebook doesn't have: each
    refused (400) with a message naming pipeline.yaml, the step and the key; no version exists."""
    alice, p = hub.user("alice"), "data-team/badly-specified"
    first = {"name": "first", "notebook": "first.ipynb", "profile": "pyspark"}
    third = {"name": "third", "notebook": "third.ipynb", "profile": "pyspark", "depends_on": ["first"]}
    cases = [
        (
            [{**first, "depends_on": ["third"]}, third],
            "pipeline.yaml: step first: depends_on: a cycle: first → third → first",
        ),
        ([first, {**third, "depends_on": ["second"]}], "step third: depends_on: 'second' is not a step"),
        ([first, {**third, "image": "x"}], "step third: image: unknown key"),
        (
            [first, {**third, "depends_on": [], "when": "first.n > 1"}],
            "step third: when: 'first.n > 1' names 'first', which is not upstream of third",
        ),
        ([first, {**third, "profile": "gpu-only"}], "step third: profile: Unknown profile 'gpu-only'"),
        (
            [first, {**third, "parameters": {"second_doubled": 1, "epochs": 3}}],
            "step third: third.ipynb: parameters",
        ),
    ]
    notebooks = {"first.ipynb": FIRST, "third.ipynb": THIRD}
    answers = []
    for steps, _ in cases:
        body = {"spec": yaml.safe_dump({"steps": steps}), "notebooks": notebooks}
        response = api(hub, alice, "POST", f"pipelines/{p}/versions", json=body)
        answers.append((response.status_code, response.json()["message"]))
    wrong = [(a, m) for a, (_, m) in zip(answers, cases, strict=True) if a[0] != 400 or m not in a[1]]
    assert wrong == [], wrong
    assert "epochs" in answers[-1][1], "the unknown parameter is named"
    described = api(hub, alice, "GET", f"pipelines/{p}")
    assert described.status_code == 404 or described.json()["versions"] == [], described.text


def test_a_failure_starts_the_chained_pipelines_once_and_loops_and_unallowed_teams_are_refused(hub):
    """retrain (data-team) runs after monitor fails; gpu-team's follow is refused until data-team
    lists gpu-team among monitor's subscribers; chaining monitor after retrain is refused as a
    loop, naming it. Then one failed monitor run starts retrain and follow exactly once each,
    recorded with the upstream run."""
    alice, bob = hub.user("alice"), hub.user("bob")
    for user, pipeline, nb in (
        (alice, "data-team/monitor", notebook("1/0")),
        (alice, "data-team/retrain", notebook("print('retrained')")),
        (bob, "gpu-team/follow", notebook("print('followed')")),
    ):
        published = api(
            hub, user, "POST", f"pipelines/{pipeline}/versions", json={"notebook": nb, "profile": "pyspark"}
        )
        assert published.status_code == 201, published.text
    after_monitor = {"trigger": "after", "after_pipeline": "data-team/monitor", "after_on": "failure"}
    assert api(hub, alice, "PUT", "pipelines/data-team/monitor/deployment", json={}).status_code == 200
    assert (
        api(hub, alice, "PUT", "pipelines/data-team/retrain/deployment", json=after_monitor).status_code
        == 200
    )

    refused = api(hub, bob, "PUT", "pipelines/gpu-team/follow/deployment", json=after_monitor)
    assert refused.status_code == 400
    assert "team data-team doesn't allow team gpu-team to chain after data-team/monitor" in refused.text
    loop = {"trigger": "after", "after_pipeline": "data-team/retrain", "after_on": "any"}
    looped = api(hub, alice, "PUT", "pipelines/data-team/monitor/deployment", json=loop)
    assert looped.status_code == 400
    assert "a loop: data-team/monitor → data-team/retrain → data-team/monitor" in looped.json()["message"]
    assert api(hub, alice, "GET", "pipelines/data-team/monitor").json()["trigger"] == "manual"
    assert api(hub, bob, "GET", "pipelines/gpu-team/follow").json()["active_version"] is None

    consent = api(
        hub, alice, "PUT", "pipelines/data-team/monitor/deployment", json={"subscribers": ["gpu-team"]}
    )
    assert consent.status_code == 200, consent.text
    assert api(hub, bob, "PUT", "pipelines/gpu-team/follow/deployment", json=after_monitor).status_code == 200

    upstream = wait_run(hub, alice, start_run(hub, alice, "data-team/monitor"))
    assert upstream["status"] == "failed"
    for user, pipeline in ((alice, "data-team/retrain"), (bob, "gpu-team/follow")):
        [run] = wait_runs(hub, user, pipeline, 1)
        assert (run["trigger"], run["upstream_run"], run["status"]) == ("after", upstream["id"], "succeeded")
        assert run["started_by"] == f"data-team/monitor run {upstream['id']}"
    assert len(api(hub, alice, "GET", "pipelines/data-team/monitor/runs").json()) == 1, "no loop ran"
