"""The cron trigger's timers follow the database: a job exactly for each deployed, unpaused,
undeleted cron pipeline, registered again at start, and a fire starts a `cron` run
(pipelines.scheduler, with APScheduler itself; no test waits for a minute to pass)."""

from __future__ import annotations

from analysis_hub.pipelines.access import find_pipeline
from analysis_hub.pipelines.store.models import Pipeline
from pipelines_support import ALICE, ScriptedExecutor, executor, make_service, published, service  # noqa: F401


def jobs(pipelines) -> list[str]:
    return sorted(job.id for job in pipelines.schedules.scheduler.get_jobs())


def job_of(pipelines, name: str) -> str:
    with pipelines.sessions() as db:
        return f"pipeline-{find_pipeline(db, ALICE, 'data-team', name).id}"


async def test_jobs_appear_and_disappear_with_deploy_pause_trigger_and_delete(service):  # noqa: F811
    """Deploying on a schedule adds a job firing in the deployment's time zone (the summary shows
    its next time); pausing removes it and resuming brings it back; a manual trigger has none, nor a
    published but undeployed pipeline; deleting removes it for good."""
    await published(service, name="daily", deploy={"schedule": "30 6 * * *", "timezone": "Europe/Paris"})
    await published(service, name="by-hand", deploy={})
    await published(service, name="draft")
    daily = job_of(service, "daily")
    assert jobs(service) == [daily]
    job = service.schedules.scheduler.get_job(daily)
    when = job.next_run_time
    assert (when.hour, when.minute, str(when.tzinfo)) == (6, 30, "Europe/Paris")
    assert service.summary(ALICE, "data-team", "daily")["next_run"] == job.next_run_time.isoformat()
    assert service.summary(ALICE, "data-team", "by-hand")["next_run"] is None

    await service.deploy(ALICE, "data-team", "daily", {"paused": True})
    assert jobs(service) == [] and service.summary(ALICE, "data-team", "daily")["next_run"] is None
    await service.deploy(ALICE, "data-team", "daily", {"paused": False})
    assert jobs(service) == [daily]
    await service.deploy(ALICE, "data-team", "daily", {"schedule": "0 * * * *"})
    hourly = service.schedules.scheduler.get_job(daily).next_run_time
    assert (hourly.minute, jobs(service)) == (0, [daily]), "the new schedule replaced the old"
    await service.deploy(ALICE, "data-team", "daily", {"trigger": "manual"})
    assert jobs(service) == []
    await service.deploy(ALICE, "data-team", "by-hand", {"schedule": "* * * * *"})
    assert jobs(service) == [job_of(service, "by-hand")]
    service.deployments.delete(ALICE, "data-team", "by-hand")
    assert jobs(service) == []


async def test_a_restarted_service_registers_the_schedules_again(service, tmp_path):  # noqa: F811
    """A new service process on the same database has the same jobs after `start()`: paused and
    deleted pipelines stay without one."""
    await published(service, name="daily", deploy={"schedule": "0 6 * * *"})
    await published(service, name="paused", deploy={"schedule": "0 7 * * *", "paused": True})
    await published(service, name="gone", deploy={"schedule": "0 8 * * *"})
    service.deployments.delete(ALICE, "data-team", "gone")
    before = jobs(service)
    restarted = make_service(tmp_path, ScriptedExecutor())
    assert jobs(restarted) == []
    restarted.start()
    try:
        assert jobs(restarted) == before == [job_of(service, "daily")]
        assert restarted.summary(ALICE, "data-team", "daily")["next_run"]
    finally:
        restarted.schedules.stop()


async def test_a_fire_starts_a_cron_run_of_the_active_version(service, executor):  # noqa: F811
    """When the job fires, a run of the active version starts with trigger `cron`, started by the
    schedule, with the deployment's parameters, and is audited; the job is the fire path itself.
    (Every minute: a fire is only taken for one at a time the schedule names, see replicas.py.)"""
    await published(service, name="daily", deploy={"schedule": "* * * * *", "parameters": {"n": 2}})
    job = service.schedules.scheduler.get_job(job_of(service, "daily"))
    await job.func(*job.args)
    await service.runs.wait_idle()
    [run] = service.runs.history(ALICE, "data-team", "daily")
    assert (run["trigger"], run["started_by"], run["status"]) == ("cron", "schedule", "succeeded")
    assert run["version"] == 1
    assert run["parameters"] == {"n": 2, "greeting": "hi"} and run["scheduled_for"]
    assert ("schedule", "run") in [(e["actor"], e["action"]) for e in service.audit(ALICE)]
    assert [spec.version for spec, _ in executor.runs] == [1]


async def test_a_fire_that_cannot_start_a_run_is_logged_and_the_job_stays(service, caplog):  # noqa: F811
    """A fire for a pipeline that can't run (here: its active version is missing from the database)
    logs the reason and raises nothing into the scheduler; the job stays registered."""
    await published(service, name="daily", deploy={"schedule": "* * * * *"})
    job_id = job_of(service, "daily")
    with service.sessions.begin() as db:
        db.get(Pipeline, int(job_id.removeprefix("pipeline-"))).active_version = 99
    job = service.schedules.scheduler.get_job(job_id)
    await job.func(*job.args)
    assert "could not start" in caplog.text and "has no version 99" in caplog.text
    assert jobs(service) == [job_id]
