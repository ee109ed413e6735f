"""What a workflow step receives, and what the run form says of it (pipelines.engine.steps)."""

from __future__ import annotations

from analysis_hub.pipelines.engine.steps import fed_by_upstream, step_parameters
from analysis_hub.pipelines.publishing.workflow_spec import WorkflowStep

INT = {"type": "int", "default": 0}
STEPS = [
    WorkflowStep("prep_data"),
    WorkflowStep("review", kind="approval", depends_on=("prep_data",)),
    WorkflowStep("side"),
    WorkflowStep(
        "report",
        depends_on=("review",),
        declared={"prep_data_rows": INT, "review_x": INT, "side_n": INT, "n": INT},
    ),
]


def test_an_upstream_output_replaces_the_run_value_and_the_form_says_which():
    """report gets prep_data's recorded `rows` instead of the run's `report.prep_data_rows` (a step
    name with an underscore included); the form names that run value, and only it: a gate records
    nothing, and `side` is not upstream of report."""
    run_values = {"report.prep_data_rows": 0, "report.n": 3, "report.side_n": 1}
    upstream = {"prep_data": {"rows": 12}}
    assert step_parameters(STEPS[3], run_values, upstream, workflow=True) == {
        "prep_data_rows": 12,
        "n": 3,
        "side_n": 1,
    }
    assert fed_by_upstream(STEPS) == {"report.prep_data_rows": "prep_data.rows"}
