"""Pipelines' pure parts and their storage: notebooks, deployments, the API document, git, schema."""

from __future__ import annotations

import json
import re
import subprocess

import nbformat
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from analysis_hub.pipelines.engine import notify
from analysis_hub.pipelines.publishing.notebooks import (
    NotebookError,
    Parameter,
    coerce_parameters,
    error_cell,
    notebook_parameters,
    read_notebook,
    strip_outputs,
)
from analysis_hub.pipelines.publishing.specs import SpecError, check_deployment, check_name, run_parameters
from analysis_hub.pipelines.store.models import Base, open_database
from analysis_hub.pipelines.store.repository import TeamRepository
from analysis_hub.pipelines.web.app import API, make_app
from notebooks import make_notebook


def notebook_text(parameters: str | None = "n = 3\nrate: float = 0.5\nname = 'x'\nflag = False") -> str:
    """A notebook with a parameters cell and one cell that has run (outputs, execution count)."""
    nb = nbformat.from_dict(make_notebook("print(n)", parameters=parameters))
    ran = nb.cells[-1]
    ran.execution_count = 3
    ran.outputs = [nbformat.v4.new_output("stream", name="stdout", text="3\n")]
    return nbformat.writes(nb)


DECLARED = {
    "n": Parameter("int", 3),
    "rate": Parameter("float", 0.5),
    "name": Parameter("str", "x"),
    "flag": Parameter("bool", False),
}


def test_parameters_come_from_the_tagged_cell_with_types():
    """Annotated and plain assignments in the `parameters` cell give names, types and defaults."""
    assert notebook_parameters(read_notebook(notebook_text())) == DECLARED


def test_a_notebook_without_a_parameters_cell_is_refused_with_how_to_tag_one():
    with pytest.raises(NotebookError, match=r"no cell tagged 'parameters'.*add the tag 'parameters'"):
        notebook_parameters(read_notebook(notebook_text(parameters=None)))


@pytest.mark.parametrize(
    "data", ["{", '{"cells": 7, "nbformat": 4, "nbformat_minor": 5, "metadata": {}}', "[]"]
)
def test_broken_notebooks_are_refused_clearly(data):
    with pytest.raises(NotebookError, match="not a valid Jupyter notebook"):
        read_notebook(data)


def test_versions_are_stored_without_outputs():
    clean = strip_outputs(read_notebook(notebook_text()))
    code = [c for c in clean.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    assert code[1].source == "print(n)"


@pytest.mark.parametrize(
    "given, expected",
    [
        ({"n": "4"}, {"n": 4}),
        ({"n": 4, "rate": 2}, {"n": 4, "rate": 2.0}),
        ({"flag": "true", "name": "y"}, {"flag": True, "name": "y"}),
        ({"rate": "1.5"}, {"rate": 1.5}),
    ],
)
def test_parameter_overrides_are_typed_as_declared(given, expected):
    assert coerce_parameters(DECLARED, given) == expected


@pytest.mark.parametrize(
    "given, message",
    [
        ({"n": "many"}, "n: expected int like the default 3, got 'many'"),
        ({"n": True}, "n: expected int"),
        ({"flag": "yes"}, "flag: expected bool"),
        ({"other": 1}, "other: not a parameter of this notebook (parameters: n, rate, name, flag)"),
    ],
)
def test_wrongly_typed_or_unknown_parameters_are_named(given, message):
    with pytest.raises(NotebookError, match=re.escape(message)):
        coerce_parameters(DECLARED, given)


def test_run_parameters_layer_version_deployment_and_run():
    """Version defaults < deployment overrides < the run's own, typed."""
    assert run_parameters(DECLARED, {"n": 5, "name": "d"}, {"name": "r"}) == {
        "n": 5,
        "rate": 0.5,
        "name": "r",
        "flag": False,
    }
    with pytest.raises(SpecError, match="parameters: bad parameters: n: expected int"):
        run_parameters(DECLARED, {}, {"n": "x"})


def test_a_good_deployment_is_accepted_as_stored_fields():
    fields = check_deployment(
        {"version": 2, "schedule": "30 6 * * 1-5", "timezone": "Europe/Paris", "parameters": {"n": "7"}},
        DECLARED,
        [1, 2],
    )
    assert fields["active_version"] == 2 and fields["trigger"] == "cron"
    assert (fields["schedule"], fields["timezone"], fields["parameters"]) == (
        "30 6 * * 1-5",
        "Europe/Paris",
        {"n": 7},
    )
    assert (fields["concurrency"], fields["timeout"], fields["retries"], fields["paused"]) == (
        "forbid",
        3600,
        0,
        False,
    )


@pytest.mark.parametrize(
    "request_, message",
    [
        ({"version": 9}, "version: 9 is not a published version (versions: [1, 2])"),
        ({"trigger": "cron", "schedule": "61 * * * *"}, "schedule: '61 * * * *' is not a cron expression"),
        ({"trigger": "cron"}, "schedule: None is not a cron expression"),
        (
            {"schedule": "* * * * *", "timezone": "Mars/Olympus"},
            "timezone: 'Mars/Olympus' is not a time zone",
        ),
        ({"trigger": "manual", "schedule": "* * * * *"}, "schedule: only a trigger 'cron' has a schedule"),
        ({"concurrency": "queue"}, "concurrency: 'queue' is not one of forbid, allow"),
        ({"timeout": 0}, "timeout: 0 must be a whole number from 1 to 604800"),
        ({"retries": 11}, "retries: 11 must be a whole number from 0 to 10"),
        ({"notify_url": "file:///etc/passwd"}, "notify_url: 'file:///etc/passwd' is not an http(s) URL"),
        ({"colour": "red"}, "colour: unknown field"),
    ],
)
def test_bad_deployments_name_the_field(request_, message):
    with pytest.raises(SpecError, match=re.escape(message)):
        check_deployment(request_, DECLARED, [1, 2])


@pytest.mark.parametrize("name", ["../etc", "a/b", "A", "x" * 64, "", "-x", "a.b"])
def test_names_with_path_characters_are_refused(name):
    with pytest.raises(SpecError, match="not a valid name"):
        check_name("pipeline", name)


def test_every_documented_api_path_is_served():
    """The OpenAPI table and the routes can't drift apart: each documented path matches a route."""
    app = make_app(pipelines=None, prefix="/services/pipelines/", max_bytes=1)
    patterns = [rule.matcher.regex for rule in app.default_router.rules[0].target.rules]
    for _, path, _, _ in API:
        # A placeholder stands for a number, a step's name for a name.
        path = path.replace("{step}", "train")
        concrete = "/services/pipelines/" + re.sub(r"\{\w+\}", "7", path.partition("?")[0])
        assert any(p.match(concrete) for p in patterns), concrete


def test_webhook_message_links_to_the_failed_cell():
    run = {"id": 4, "version": 2, "status": "failed", "trigger": "cron", "started_by": "schedule"}
    message = notify.run_message(
        "data", "report", {**run, "reason": "ZeroDivisionError", "error_cell": 3}, "http://h/r/4"
    )
    assert message["text"].startswith(":x: data/report run 4 (v2) failed: ZeroDivisionError")
    assert "<http://h/r/4#papermill-error-cell|output notebook>" in message["text"]
    assert message["blocks"][0]["text"]["text"] == message["text"]
    assert error_cell(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")])) is None


def test_versions_are_commits_by_their_publisher_tagged_per_version(tmp_path):
    repo = TeamRepository(tmp_path, "data-team")
    first = repo.commit(
        "report", 1, {"notebook.ipynb": notebook_text()}, {"profile": "pyspark"}, "alice", "first"
    )
    repo.commit("report", 2, {"notebook.ipynb": notebook_text()}, {"profile": "pyspark"}, "bob", "")
    notebook, metadata = repo.read(first, "report")
    assert read_notebook(notebook).cells[0].source.startswith("n = 3") and metadata == {"profile": "pyspark"}
    assert [(e["author"], e["subject"]) for e in repo.log("report")] == [
        ("bob", "report v2"),
        ("alice", "report v1: first"),
    ]
    tags = subprocess.run(["git", "-C", str(repo.path), "tag"], capture_output=True, text=True).stdout.split()
    assert tags == ["report/v1", "report/v2"]


def test_the_migrations_build_exactly_the_models_schema(tmp_path):
    """Alembic's migrations and the SQLAlchemy models describe the same tables (no autogenerate diff)."""
    sessions = open_database(f"sqlite:///{tmp_path / 'p.sqlite'}")
    with sessions.kw["bind"].connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []
    tables = '["audit", "pipelines", "replicas", "runs", "step_runs", "versions"]'
    assert json.dumps(sorted(Base.metadata.tables)) == tables
