"""Deployments and the trigger vocabulary: deploy, pause/resume, rollback, delete, HTTP tokens, the
executor's `prepare`, and the migration that brought stored runs into the vocabulary
(pipelines.deployments, pipelines.triggers, specs.merge_deployment)."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from analysis_hub.pipelines.access import NotFound
from analysis_hub.pipelines.publishing.specs import SpecError, merge_deployment
from analysis_hub.pipelines.store.models import MIGRATIONS, Run, open_database
from analysis_hub.pipelines.triggers import CRON, HTTP, MANUAL, TRIGGERS, default_trigger
from pipelines_support import ALICE, executor, published, service  # noqa: F401
from sqlalchemy import create_engine, text

CURRENT = {"version": 1, "trigger": CRON, "schedule": "0 6 * * *", "timezone": "UTC", "paused": False}


def test_one_trigger_vocabulary_with_one_default():
    """Deployments and runs say manual, cron, http or after; a request naming no trigger is cron exactly
    when it has a schedule."""
    assert TRIGGERS == ("manual", "cron", "http", "after")
    assert (default_trigger("0 6 * * *"), default_trigger(None), default_trigger("")) == (
        CRON,
        MANUAL,
        MANUAL,
    )


@pytest.mark.parametrize(
    "request_, trigger, schedule",
    [
        ({}, CRON, "0 6 * * *"),  # nothing named: everything stays
        ({"paused": True}, CRON, "0 6 * * *"),
        ({"schedule": "*/5 * * * *"}, CRON, "*/5 * * * *"),
        ({"schedule": None}, MANUAL, None),  # dropping the schedule falls back to manual
        ({"trigger": HTTP}, HTTP, None),  # another trigger drops the old schedule
        ({"trigger": MANUAL}, MANUAL, None),
        ({"trigger": CRON}, CRON, "0 6 * * *"),
    ],
)
def test_a_change_keeps_what_it_leaves_out_and_applies_the_trigger_default(request_, trigger, schedule):
    merged = merge_deployment(CURRENT, request_)
    assert (merged["trigger"], merged["schedule"], merged["timezone"]) == (trigger, schedule, "UTC")


async def test_deploy_stores_the_deployment_audits_it_and_prepares_the_version(service, executor):  # noqa: F811
    """A first deploy with only a schedule picks the latest version and the cron trigger, records
    before and after in the audit trail, and hands the executor the version's spec (prepare) with
    the deployment's parameters; a rollback prepares the older version."""
    await published(service)
    await published(service)
    deployed = await service.deploy(
        ALICE, "data-team", "report", {"schedule": "0 6 * * 1-5", "parameters": {"n": "5"}}
    )
    assert (deployed["active_version"], deployed["trigger"], deployed["schedule"]) == (2, CRON, "0 6 * * 1-5")
    assert deployed["parameters"] == {"n": 5} and "trigger_token" not in deployed
    [event] = [e for e in service.audit(ALICE) if e["action"] == "deploy"]
    assert (event["before"]["active_version"], event["after"]["active_version"]) == (None, 2)
    assert event["after"]["schedule"] == "0 6 * * 1-5"
    [spec] = executor.prepared
    assert (spec.run_id, spec.team, spec.pipeline, spec.version, spec.image) == (
        0,
        "data-team",
        "report",
        2,
        "pyspark",
    )
    assert spec.parameters == {"n": 5, "greeting": "hi"} and spec.timeout == 3600
    rolled_back = await service.rollback(ALICE, "data-team", "report", 1)
    assert rolled_back["active_version"] == 1 and rolled_back["schedule"] == "0 6 * * 1-5"
    assert [s.version for s in executor.prepared] == [2, 1]
    rollback = service.audit(ALICE)[-1]
    assert (
        rollback["action"],
        rollback["before"]["active_version"],
        rollback["after"]["active_version"],
    ) == (
        "rollback",
        2,
        1,
    )


async def test_pause_and_resume_are_audited_as_such_and_prepare_nothing(service, executor):  # noqa: F811
    await published(service, deploy={})
    await service.deploy(ALICE, "data-team", "report", {"paused": True})
    await service.deploy(ALICE, "data-team", "report", {"paused": False})
    assert [e["action"] for e in service.audit(ALICE)] == ["publish", "deploy", "pause", "resume"]
    assert len(executor.prepared) == 1, "only the deploy prepared the version"


async def test_a_bad_deployment_names_every_bad_field_and_changes_nothing(service, executor):  # noqa: F811
    """Wrong fields together are refused at once, naming each; the deployment, the audit trail
    and the executor are untouched. So are a rollback to a missing version and one before any
    deploy."""
    await published(service)
    with pytest.raises(SpecError, match="not deployed; deploy it first"):
        await service.rollback(ALICE, "data-team", "report", 1)
    await service.deploy(ALICE, "data-team", "report", {})
    before, audit, prepared = (
        service.summary(ALICE, "data-team", "report"),
        service.audit(ALICE),
        len(executor.prepared),
    )
    bad = {"trigger": "pipeline", "schedule": "61 * * * *", "retries": 11, "parameters": {"n": "many"}}
    with pytest.raises(SpecError) as refused:
        await service.deploy(ALICE, "data-team", "report", bad)
    for field in (
        "trigger: 'pipeline' is not one of manual, cron, http",
        "schedule:",
        "retries: 11",
        "n: expected int",
    ):
        assert field in str(refused.value)
    with pytest.raises(NotFound, match="has no version 7"):
        await service.rollback(ALICE, "data-team", "report", 7)
    assert service.summary(ALICE, "data-team", "report") == before
    assert service.audit(ALICE) == audit and len(executor.prepared) == prepared


async def test_a_failing_prepare_refuses_the_deploy_and_changes_nothing(service, executor):  # noqa: F811
    """If the executor can't prepare the version (its cluster unreachable, say), the deploy fails and the
    pipeline keeps its deployment."""
    await published(service, deploy={})
    before, audit = service.summary(ALICE, "data-team", "report"), service.audit(ALICE)

    async def broken(spec):
        raise RuntimeError("the workflow store is unreachable")

    executor.prepare = broken
    with pytest.raises(RuntimeError, match="unreachable"):
        await service.deploy(ALICE, "data-team", "report", {"schedule": "* * * * *"})
    assert service.summary(ALICE, "data-team", "report") == before and service.audit(ALICE) == audit


async def test_an_http_trigger_gets_its_token_once_and_a_new_one_on_request(service):  # noqa: F811
    await published(service)
    first = await service.deploy(ALICE, "data-team", "report", {"trigger": HTTP})
    again = await service.deploy(ALICE, "data-team", "report", {"retries": 1})
    renewed = await service.deploy(ALICE, "data-team", "report", {"new_trigger_token": True})
    assert first["trigger"] == HTTP and len(first["trigger_token"]) > 30
    assert "trigger_token" not in again, "the token is shown once"
    assert renewed["trigger_token"] != first["trigger_token"]
    assert all("trigger_token" not in str(e) for e in service.audit(ALICE)), "the audit never holds a token"


async def test_a_deleted_pipeline_is_hidden_with_its_history_kept(service):  # noqa: F811
    await published(service, deploy={"schedule": "0 6 * * *"})
    service.deployments.delete(ALICE, "data-team", "report")
    with pytest.raises(NotFound):
        service.describe(ALICE, "data-team", "report")
    events = service.audit(ALICE, "data-team", "report")
    assert [e["action"] for e in events] == ["publish", "deploy", "delete"]
    assert events[-1]["before"]["schedule"] == "0 6 * * *"


def test_the_migration_renames_the_schedule_trigger_of_stored_runs_to_cron(tmp_path):
    """A database from before revision 0002 (runs started by the schedule said `schedule`) opens
    with those runs saying `cron`; other runs keep their trigger."""
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    engine = create_engine(url)
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.execute(
            text(
                "INSERT INTO pipelines (id, team, name, created_at, created_by, trigger, timezone,"
                " parameters, concurrency, timeout, retries, paused, notify_on_success)"
                " VALUES (1, 'data-team', 'report', '2026-01-01', 'alice', 'cron', 'UTC', '{}', 'forbid',"
                " 60, 0, 0, 0)"
            )
        )
        for run_id, trigger in ((1, "schedule"), (2, "manual"), (3, "http"), (4, "schedule")):
            connection.execute(
                text(
                    "INSERT INTO runs (id, pipeline_id, version, status, trigger, started_by, parameters,"
                    " attempts, created_at, reason) VALUES"
                    f" ({run_id}, 1, 1, 'succeeded', '{trigger}', 'x', '{{}}', 1, '2026-01-01', '')"
                )
            )
    engine.dispose()
    with open_database(url)() as db:
        assert [r.trigger for r in db.query(Run).order_by(Run.id)] == [CRON, MANUAL, HTTP, CRON]


def test_the_api_document_and_the_cli_offer_exactly_the_vocabulary(capsys):
    """The OpenAPI document lists the allowed triggers, and the CLI's --trigger accepts exactly
    them: all three from `triggers.TRIGGERS`, so a new word shows up everywhere at once."""
    import argparse

    from analysis_hub.pipelines import client
    from analysis_hub.pipelines.web.app import openapi

    document = openapi("/services/pipelines/")
    deployment = document["paths"]["/services/pipelines/api/pipelines/{team}/{name}/deployment"]["put"]
    schema = deployment["requestBody"]["content"]["application/json"]["schema"]
    assert schema["properties"]["trigger"] == {"type": "string", "enum": ["manual", "cron", "http", "after"]}
    parser = argparse.ArgumentParser()
    client.add_parser(parser.add_subparsers())
    for trigger in TRIGGERS:
        assert parser.parse_args(["pipelines", "deploy", "t/n", "--trigger", trigger]).trigger == trigger
    with pytest.raises(SystemExit):
        parser.parse_args(["pipelines", "deploy", "t/n", "--trigger", "schedule"])
    assert "invalid choice: 'schedule'" in capsys.readouterr().err
