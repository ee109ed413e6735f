"""Who may see, change and run a pipeline: team members and admins, nobody else (pipelines.access)."""

from __future__ import annotations

import pytest
from analysis_hub.pipelines.access import Forbidden, NotFound, find_pipeline, find_run, pipeline_for_token
from pipelines_support import ADMIN, ALICE, BOB, CAROL, executor, published, service  # noqa: F401


def test_membership_is_a_hub_group_or_admin():
    """A team is a hub group: its members and admins belong, other users don't."""
    assert [c.member_of("data-team") for c in (ALICE, CAROL, ADMIN, BOB)] == [True, True, True, False]


async def test_another_team_is_refused_everything_and_sees_nothing(service):  # noqa: F811
    """bob (gpu-team) can't read, publish to, deploy, roll back, run, delete or read the runs of
    data-team's pipeline (Forbidden), and lists and audit trails show him none of it; nothing
    he tried is recorded."""
    await published(service, deploy={})
    run = await service.runs.run_now(ALICE, "data-team", "report")
    await service.runs.wait_idle()
    audit = service.audit(ALICE)
    attempts = [
        lambda: service.describe(BOB, "data-team", "report"),
        lambda: service.summary(BOB, "data-team", "report"),
        lambda: service.versions.notebook(BOB, "data-team", "report", 1),
        lambda: service.runs.history(BOB, "data-team", "report"),
        lambda: service.runs.get(BOB, run["id"]),
        lambda: service.deployments.delete(BOB, "data-team", "report"),
    ]
    for attempt in attempts:
        with pytest.raises(Forbidden):
            attempt()
    for coroutine in (
        service.versions.publish(BOB, "data-team", "report", "{}", "pyspark"),
        service.deploy(BOB, "data-team", "report", {"paused": True}),
        service.rollback(BOB, "data-team", "report", 1),
        service.runs.run_now(BOB, "data-team", "report"),
    ):
        with pytest.raises(Forbidden, match="only members of data-team"):
            await coroutine
    assert service.list_pipelines(BOB) == [] and service.audit(BOB) == []
    assert service.audit(ALICE) == audit, "refusals change nothing"
    assert len(service.runs.history(ALICE, "data-team", "report")) == 1


async def test_members_and_admins_see_the_teams_pipelines(service):  # noqa: F811
    """Every member of the team and every admin sees the pipeline, its runs and its audit trail."""
    await published(service, deploy={})
    await published(service, name="train", team="gpu-team")
    for caller in (ALICE, CAROL, ADMIN):
        assert service.describe(caller, "data-team", "report")["latest_version"] == 1
    assert [p["name"] for p in service.list_pipelines(ALICE)] == ["report"]
    assert [p["name"] for p in service.list_pipelines(CAROL)] == ["report", "train"]
    assert [p["name"] for p in service.list_pipelines(ADMIN)] == ["report", "train"]
    assert {e["team"] for e in service.audit(ALICE)} == {"data-team"}


async def test_missing_and_deleted_pipelines_are_not_found(service):  # noqa: F811
    """An unknown pipeline or run is NotFound, and so is a deleted pipeline, even for its team."""
    await published(service, deploy={})
    service.deployments.delete(ALICE, "data-team", "report")
    with service.sessions() as db:
        for team, name in (("data-team", "nope"), ("data-team", "report")):
            with pytest.raises(NotFound, match=f"no pipeline data-team/{name}"):
                find_pipeline(db, ALICE, team, name)
        with pytest.raises(NotFound, match="no run 99"):
            find_run(db, ALICE, 99)
    assert service.list_pipelines(ALICE) == []


async def test_a_trigger_token_opens_only_its_own_http_pipeline(service):  # noqa: F811
    """The HTTP trigger's token works for its pipeline while its trigger is http; a wrong token,
    another pipeline's token, or the token after the trigger changed are all Forbidden alike."""
    await published(service, deploy={"trigger": "http"})
    await published(service, name="other", deploy={"trigger": "http"})
    token = (await service.deploy(ALICE, "data-team", "report", {"new_trigger_token": True}))["trigger_token"]
    with service.sessions() as db:
        assert pipeline_for_token(db, "data-team", "report", token).name == "report"
        for name, given in (("report", "nope"), ("report", ""), ("other", token), ("missing", token)):
            with pytest.raises(Forbidden, match="not a valid trigger token"):
                pipeline_for_token(db, "data-team", name, given)
    await service.deploy(ALICE, "data-team", "report", {"trigger": "manual"})
    with service.sessions() as db, pytest.raises(Forbidden):
        pipeline_for_token(db, "data-team", "report", token)
