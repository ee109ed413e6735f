"""Runs: the concurrency policy, retries, the recorded outcome, the run's files and the webhook
(pipelines.runs, with a scripted executor and a real HTTP receiver on loopback)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from analysis_hub.pipelines.publishing.specs import SpecError
from pipelines_support import (  # noqa: F401
    ALICE,
    FAILED,
    SUCCEEDED,
    ScriptedExecutor,
    executor,
    make_service,
    published,
    service,
)
from webhooks import receive_webhooks


@pytest.fixture
def webhooks():
    with receive_webhooks() as (url, received):
        yield SimpleNamespace(url=url, received=received)


async def finished(pipelines, run: dict) -> dict:
    await pipelines.runs.wait_idle()
    return pipelines.runs.get(ALICE, run["id"])[0]


async def test_a_run_executes_the_active_version_and_records_its_outcome(service, executor):  # noqa: F811
    """Run now: the executor gets the active version's notebook and spec (parameters: version
    defaults < deployment < this run), the run is recorded succeeded after one attempt, and its
    files are where the API serves them from."""
    await published(service, deploy={"parameters": {"n": 4}})
    started = await service.runs.run_now(ALICE, "data-team", "report", {"greeting": "yo"})
    assert (started["status"], started["trigger"], started["started_by"]) == ("queued", "manual", "alice")
    run = await finished(service, started)
    assert (run["status"], run["attempts"], run["exit_code"], run["finished"]) == ("succeeded", 1, 0, True)
    assert run["parameters"] == {"n": 4, "greeting": "yo"} and (run["team"], run["pipeline"]) == (
        "data-team",
        "report",
    )
    [(spec, notebook)] = executor.runs
    memory = spec.profile.resources.memory_limit
    assert (spec.run_id, spec.version, spec.kernel, memory) == (run["id"], 1, "python3", 4 * 2**30)
    assert "print(greeting * n)" in notebook
    _, folder = service.runs.get(ALICE, run["id"])
    assert sorted(p.name for p in folder.iterdir()) == ["log.txt", "output.html", "output.ipynb"]
    assert service.summary(ALICE, "data-team", "report")["last_run"]["id"] == run["id"]


async def test_retries_run_again_until_success_and_record_the_last_outcome(tmp_path):
    """With retries 2, a run that fails twice and then succeeds is succeeded after 3 attempts; one
    that keeps failing is failed after 3 attempts with the last error and its cell."""
    scripted = ScriptedExecutor(FAILED, FAILED, SUCCEEDED, FAILED)
    pipelines = make_service(tmp_path, scripted)
    await published(pipelines, deploy={"retries": 2})
    recovered = await finished(pipelines, await pipelines.runs.run_now(ALICE, "data-team", "report"))
    assert (recovered["status"], recovered["attempts"], recovered["reason"]) == ("succeeded", 3, "")
    failed = await finished(pipelines, await pipelines.runs.run_now(ALICE, "data-team", "report"))
    assert (failed["status"], failed["attempts"], failed["exit_code"]) == ("failed", 3, 1)
    assert (failed["reason"], failed["error_cell"]) == ("ZeroDivisionError: division by zero", 2)
    assert len(scripted.runs) == 6


async def test_concurrency_forbid_records_a_skip_and_allow_runs_both(service, executor):  # noqa: F811
    """While a run is still going, a second one is recorded skipped with the reason (forbid, the
    default) and never executes; with concurrency allow both execute."""
    await published(service, deploy={})
    executor.gate.clear()  # the first run stays "running" until the gate opens
    first = await service.runs.run_now(ALICE, "data-team", "report")
    second = await service.runs.run_now(ALICE, "data-team", "report")
    assert second["status"] == "skipped" and second["finished"]
    assert second["reason"] == "skipped: the previous run is still going (concurrency: forbid)"
    executor.gate.set()
    assert (await finished(service, first))["status"] == "succeeded"
    assert len(executor.runs) == 1

    await service.deploy(ALICE, "data-team", "report", {"concurrency": "allow"})
    executor.gate.clear()
    both = [await service.runs.run_now(ALICE, "data-team", "report") for _ in range(2)]
    assert [r["status"] for r in both] == ["queued", "queued"]
    executor.gate.set()
    assert [(await finished(service, r))["status"] for r in both] == ["succeeded", "succeeded"]
    statuses = [r["status"] for r in service.runs.history(ALICE, "data-team", "report")]
    assert statuses == ["succeeded", "succeeded", "skipped", "succeeded"]


async def test_a_failed_run_notifies_the_webhook_with_a_link_to_the_error_cell(service, executor, webhooks):  # noqa: F811
    """notify_url gets a Slack-style message for a failed run, linking to the run page at
    papermill's error anchor; a succeeded run notifies only with notify_on_success."""
    await published(service, deploy={"notify_url": webhooks.url})
    executor.outcomes = [FAILED, SUCCEEDED, SUCCEEDED]
    failed = await finished(service, await service.runs.run_now(ALICE, "data-team", "report"))
    quiet = await finished(service, await service.runs.run_now(ALICE, "data-team", "report"))
    await service.deploy(ALICE, "data-team", "report", {"notify_on_success": True})
    loud = await finished(service, await service.runs.run_now(ALICE, "data-team", "report"))
    assert (failed["status"], quiet["status"], loud["status"]) == ("failed", "succeeded", "succeeded")
    assert [m["analysis_hub"]["run"]["id"] for m in webhooks.received] == [failed["id"], loud["id"]]
    message = webhooks.received[0]
    assert message["text"].startswith(
        f":x: data-team/report run {failed['id']} (v1) failed: ZeroDivisionError"
    )
    assert message["analysis_hub"]["url"] == (
        f"http://hub.example.com/services/pipelines/runs/{failed['id']}#papermill-error-cell"
    )


async def test_an_executor_that_raises_fails_the_run_with_the_error(service, executor):  # noqa: F811
    """A bug in an executor never leaves a run `running`: it is failed, saying why."""
    await published(service, deploy={})

    async def broken(spec, notebook, out_dir):
        raise OSError("no space left on device")

    executor.run = broken
    run = await finished(service, await service.runs.run_now(ALICE, "data-team", "report"))
    assert (run["status"], run["reason"]) == (
        "failed",
        "the run could not be started: no space left on device",
    )


async def test_runs_need_a_deployed_version_and_valid_parameters(service, executor):  # noqa: F811
    await published(service)
    with pytest.raises(SpecError, match="not deployed; deploy a version first"):
        await service.runs.run_now(ALICE, "data-team", "report")
    await service.deploy(ALICE, "data-team", "report", {})
    with pytest.raises(SpecError, match="n: expected int"):
        await service.runs.run_now(ALICE, "data-team", "report", {"n": [1]})
    assert service.runs.history(ALICE, "data-team", "report") == [] and executor.runs == []


async def test_an_http_trigger_run_says_http_and_who(service):  # noqa: F811
    await published(service)
    token = (await service.deploy(ALICE, "data-team", "report", {"trigger": "http"}))["trigger_token"]
    run = await finished(
        service, await service.runs.run_by_http_trigger("data-team", "report", token, {"n": 1})
    )
    assert (run["trigger"], run["started_by"], run["status"]) == ("http", "http-trigger", "succeeded")


async def test_runs_a_stopped_service_left_unfinished_are_failed_at_start(tmp_path):
    """A run still running when the service stopped is failed as interrupted by the next start;
    finished runs keep their outcome."""
    scripted = ScriptedExecutor()
    first = make_service(tmp_path, scripted)
    await published(first, deploy={})
    done = await finished(first, await first.runs.run_now(ALICE, "data-team", "report"))
    scripted.gate.clear()
    scripted.entered.clear()
    stuck = await first.runs.run_now(ALICE, "data-team", "report")
    await scripted.entered.wait()  # the run is "running" in the executor, and stays there
    second = make_service(tmp_path, ScriptedExecutor())
    second.start()
    try:
        run = second.runs.get(ALICE, stuck["id"])[0]
        assert run["status"] == "failed"
        assert run["reason"] == "interrupted: the pipelines service stopped during the run"
        assert second.runs.get(ALICE, done["id"])[0] == done
    finally:
        second.schedules.stop()
        for task in first.runs._tasks:
            task.cancel()  # the first "process" is gone: its run never finishes
        await asyncio.gather(*first.runs._tasks, return_exceptions=True)
