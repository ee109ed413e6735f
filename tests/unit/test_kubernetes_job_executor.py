"""The Job executor: Job and pod states as run states, and its I/O against a scripted API.

`job_status.job_result` maps Jobs and pods written by hand in the shapes the
API reports.

No API server runs here. `ScriptedApi` has the methods of `jobs_api.JobsApi`
and plays a Job through the states a cluster reports (a pod pending, then
running with its log, then ended); each wait for a change moves it on. The
real executor (`job_executor.JobExecutor`) drives it. The runner's frame in
the log is the real one (`notebook_runner.frame_lines`). On a cluster the
same executor runs against the real API (the cluster suite).
"""

from __future__ import annotations

import asyncio

import nbformat
import pytest
from analysis_hub.backends.kubernetes import notebook_runner
from analysis_hub.backends.kubernetes.job_executor import JobExecutor
from analysis_hub.backends.kubernetes.job_status import job_finished, job_result, pod_problem
from analysis_hub.backends.kubernetes.jobs import MAX_NOTEBOOK_BYTES
from analysis_hub.backends.kubernetes.run_folders import RunFolderSettings
from analysis_hub.backends.kubernetes.translate import ClusterFacts
from analysis_hub.pipelines.publishing.specs import RunSpec
from unit_support import run_profile

CLUSTER = ClusterFacts(images={"pyspark": "registry.example.com/pyspark:1"})


def notebook(*sources: str, error: bool = False) -> str:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    if error:  # as papermill marks the cell that failed
        nb.cells[-1].metadata["papermill"] = {"exception": True}
    return nbformat.writes(nb)


NOT_YET = {"type": "Complete", "status": "False"}


def job(*conditions: dict, deleting: bool = False) -> dict:
    meta = {
        "name": "j",
        "resourceVersion": "7",
        **({"deletionTimestamp": "2026-12-01T10:00:00Z"} if deleting else {}),
    }
    return {"metadata": meta, "status": {"conditions": list(conditions)}}


def pod(name: str, state: dict | None = None, **status) -> dict:
    statuses = [{"name": "notebook", "state": state}] if state else []
    return {
        "metadata": {"name": name, "creationTimestamp": f"2026-12-01T10:00:0{name[-1]}Z"},
        "status": {"containerStatuses": statuses, **status},
    }


def ended(code: int, reason: str = "Error") -> dict:
    return {"terminated": {"exitCode": code, "reason": reason}}


FAILED_JOB = {
    "type": "Failed",
    "status": "True",
    "reason": "BackoffLimitExceeded",
    "message": "Job has reached the specified backoff limit",
}
DEADLINE_JOB = {
    "type": "Failed",
    "status": "True",
    "reason": "DeadlineExceeded",
    "message": "Job was active longer than specified deadline",
}
PULL = {
    "waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "registry.example.com/x"'}
}
UNSCHEDULABLE = {
    "phase": "Pending",
    "conditions": [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
        }
    ],
}


@pytest.mark.parametrize(
    ("the_job", "pods", "expected"),
    [
        (
            job({"type": "Complete", "status": "True"}),
            [pod("p1", ended(0, "Completed"))],
            ("succeeded", 0, "", False),
        ),
        (job(FAILED_JOB), [pod("p1", ended(1)), pod("p2", ended(1))], ("failed", 1, "", False)),
        (job(FAILED_JOB), [pod("p1", ended(137, "OOMKilled"))], ("failed", 137, "", True)),
        (job(DEADLINE_JOB), [pod("p1", ended(143))], ("timed_out", 143, "", False)),
        (
            job(DEADLINE_JOB),
            [pod("p1", PULL)],
            (
                "timed_out",
                None,
                'no pod ran the notebook: ImagePullBackOff: Back-off pulling image "registry.example.com/x"',
                False,
            ),
        ),
        (
            job(DEADLINE_JOB),
            [pod("p1", None, **UNSCHEDULABLE)],
            (
                "timed_out",
                None,
                "no pod ran the notebook: the pod could not be scheduled: "
                "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
                False,
            ),
        ),
        (None, [pod("p1", ended(143))], ("cancelled", 143, "cancelled: the run's Job was deleted", False)),
        (job(NOT_YET, deleting=True), [], ("cancelled", None, "cancelled: the run's Job was deleted", False)),
        (
            job(FAILED_JOB),
            [
                pod(
                    "p1",
                    {
                        "waiting": {
                            "reason": "CreateContainerConfigError",
                            "message": 'configmap "x" not found',
                        }
                    },
                )
            ],
            ("failed", None, 'CreateContainerConfigError: configmap "x" not found', False),
        ),
        (
            job(FAILED_JOB),
            [
                pod(
                    "p1",
                    None,
                    phase="Failed",
                    reason="Evicted",
                    message="The node was low on resource: memory.",
                )
            ],
            ("failed", None, "Evicted: The node was low on resource: memory.", False),
        ),
    ],
    ids=[
        "complete",
        "failed-retried",
        "oom",
        "deadline",
        "deadline-image-pull",
        "deadline-unschedulable",
        "deleted",
        "deleting",
        "config-error",
        "evicted",
    ],
)
def test_job_and_pod_states_map_to_run_states(the_job, pods, expected):
    """Complete is succeeded (exit 0); Failed is failed with the last attempt's exit code, OOMKilled
    said so; the Job's DeadlineExceeded is timed_out, and when no pod ever ran the notebook the
    reason says why (an image that can't be pulled, no node with a free GPU); a deleted Job is
    cancelled; a pod that never ran says why (a missing ConfigMap, an eviction)."""
    result = job_result(the_job, pods)
    assert (result.status, result.exit_code, result.reason, result.out_of_memory) == expected


def test_a_job_is_finished_only_with_its_terminal_condition():
    """A Job is finished once its Complete or Failed condition is True, not before (pods may still be
    stopping), and a waiting container that is only being created is no problem to report."""
    assert not job_finished(job(NOT_YET)) and not job_finished(
        job({"type": "FailureTarget", "status": "True"})
    )
    assert job_finished(job(FAILED_JOB)) and job_finished(job({"type": "Complete", "status": "True"}))
    assert pod_problem(pod("p1", {"waiting": {"reason": "ContainerCreating"}})) == ""


class ScriptedApi:
    """`JobsApi`'s methods over one scripted Job: `states` are (job conditions, pod container state)
    in turn; each wait for a change (and the end of a followed log) moves to the next state."""

    def __init__(self, states: list[tuple[list[dict], dict | None]], log: list[str], token_box: dict):
        self.states, self.step, self.log, self.token_box = states, 0, log, token_box
        self.jobs: dict[str, dict] = {}
        self.config_maps: list[dict] = []
        self.deleted: list[str] = []
        self.calls: list[str] = []
        self.client = None
        self.hold = False  # a followed log ends only when the Job is deleted

    def _advance(self) -> None:
        self.step = min(self.step + 1, len(self.states) - 1)

    async def create_job(self, body: dict) -> dict:
        self.calls.append("create_job")
        [arguments] = [c["args"] for c in body["spec"]["template"]["spec"]["containers"]]
        self.token_box["token"] = arguments[4]  # the runner's TOKEN, as the pod would get it
        self.jobs[body["metadata"]["name"]] = body
        return {**body, "metadata": {**body["metadata"], "uid": "uid-1"}}

    async def create_config_map(self, body: dict) -> dict:
        self.calls.append("create_config_map")
        self.config_maps.append(body)
        return body

    async def get_job(self, name: str) -> dict | None:
        if name in self.deleted:
            return None
        conditions, _ = self.states[self.step]
        return {
            "metadata": {"name": name, "resourceVersion": str(self.step)},
            "status": {"conditions": conditions},
        }

    async def next_job_change(self, name: str, resource_version: str, timeout: int) -> dict | None:
        self.calls.append("wait")
        await asyncio.sleep(0)
        self._advance()
        return {"type": "MODIFIED", "object": await self.get_job(name)}

    async def list_pods(self, label_selector: str) -> list[dict]:
        _, state = self.states[self.step]
        if self.deleted:  # its pods are stopped (SIGTERM) before the Job goes
            state = {"terminated": {"exitCode": 143, "reason": "Error"}}
        if state is None:
            return []
        container = {"name": "notebook", "state": state}
        return [
            {
                "metadata": {"name": "p-1", "creationTimestamp": "1"},
                "status": {"containerStatuses": [container]},
            }
        ]

    async def pod_log(self, name: str, follow: bool):
        self.calls.append(f"log follow={follow}")
        text = "\n".join(line.replace("TOKEN", self.token_box["token"]) for line in self.log) + "\n"
        for i in range(0, len(text), 700):  # chunks that cut lines and characters anywhere
            yield text[i : i + 700].encode()
        if follow:
            while self.hold and not self.deleted:  # a running container's log stays open
                await asyncio.sleep(0.01)
            self._advance()

    async def delete_job(self, name: str) -> bool:
        self.deleted.append(name)
        return True

    async def list_jobs(self, label_selector: str) -> list[dict]:
        return [await self.get_job(n) for n in self.jobs if n not in self.deleted]


def framed(text: str) -> list[str]:
    """The runner's frame of `text`, its token left as TOKEN (the executor picks it per run)."""
    return notebook_runner.frame_lines(text.encode(), "TOKEN")


def executor_with(api: ScriptedApi) -> JobExecutor:
    executor = JobExecutor("analysis-hub", CLUSTER, RunFolderSettings(), lambda: None, wait_seconds=1)
    executor._api = api
    return executor


def spec(**changes) -> RunSpec:
    values = {"run_id": 7, "team": "data-team", "pipeline": "daily", "version": 1, "profile": run_profile()}
    return RunSpec(**{**values, "kernel": "python3", "parameters": {"rows": 3}, **changes})


PENDING = {"waiting": {"reason": "ContainerCreating"}}
RUNNING = {"running": {"startedAt": "2026-12-01T10:00:00Z"}}
COMPLETE = [{"type": "Complete", "status": "True"}]
FAILED = [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "backoff"}]
DEADLINE = [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "deadline"}]


async def test_a_succeeded_job_leaves_the_log_and_the_output_notebook(tmp_path):
    """The Job is created, then its ConfigMap; the pod's log is followed while it runs and written
    to log.txt without the frame, whose notebook becomes output.ipynb (and output.html)."""
    output = notebook("print('hello')")
    log = [
        "start.sh: sourcing hooks",
        "[I] Executing notebook",
        "hello",
        *framed(output),
        "notebook_runner: done",
    ]
    states = [
        ([], PENDING),
        ([], RUNNING),
        (COMPLETE, {"terminated": {"exitCode": 0, "reason": "Completed"}}),
    ]
    api = ScriptedApi(states, log, {})
    outcome = await executor_with(api).run(spec(), notebook("print('hello')"), tmp_path)
    assert (outcome.status, outcome.exit_code) == ("succeeded", 0)
    assert api.calls[:2] == ["create_job", "create_config_map"]
    assert api.config_maps[0]["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert (
        tmp_path / "log.txt"
    ).read_text() == "start.sh: sourcing hooks\n[I] Executing notebook\nhello\nnotebook_runner: done\n"
    assert (tmp_path / "output.ipynb").read_text() == output
    assert (tmp_path / "output.html").exists() and (tmp_path / "input.ipynb").exists()
    assert (
        "log follow=True" in api.calls and "log follow=False" in api.calls
    )  # followed, then read to its end


async def test_a_failed_notebook_reports_its_exit_code_and_error_cell(tmp_path):
    output = notebook("x = 1", "1 / 0", error=True)
    log = ["ZeroDivisionError: division by zero", *framed(output)]
    states = [([], RUNNING), (FAILED, {"terminated": {"exitCode": 1, "reason": "Error"}})]
    outcome = await executor_with(ScriptedApi(states, log, {})).run(spec(), notebook("x"), tmp_path)
    assert (outcome.status, outcome.exit_code, outcome.error_cell) == ("failed", 1, 1)
    assert outcome.reason == "ZeroDivisionError: division by zero"


async def test_an_out_of_memory_kill_is_the_reason(tmp_path):
    states = [([], RUNNING), (FAILED, {"terminated": {"exitCode": 137, "reason": "OOMKilled"}})]
    outcome = await executor_with(ScriptedApi(states, ["Killed"], {})).run(spec(), notebook("x"), tmp_path)
    assert outcome.status == "failed" and "killed for using more than its memory limit" in outcome.reason


async def test_a_pod_that_never_starts_times_out_and_says_why(tmp_path):
    pulling = {"waiting": {"reason": "ErrImagePull", "message": "not found"}}
    states = [([], pulling), (DEADLINE, pulling)]
    outcome = await executor_with(ScriptedApi(states, [], {})).run(spec(timeout=60), notebook("x"), tmp_path)
    assert outcome.status == "timed_out"
    assert (
        outcome.reason
        == "stopped after the timeout of 60 s: no pod ran the notebook: ErrImagePull: not found"
    )
    assert "pod p-1: ErrImagePull: not found" in (tmp_path / "log.txt").read_text()


async def test_too_large_a_notebook_is_refused_before_anything_is_made(tmp_path):
    api = ScriptedApi([([], None)], [], {})
    outcome = await executor_with(api).run(spec(), "x" * (MAX_NOTEBOOK_BYTES + 1), tmp_path)
    assert outcome.status == "failed" and "at most 900 KiB" in outcome.reason
    assert api.calls == []


async def test_cancel_deletes_the_runs_job_and_the_run_ends_cancelled(tmp_path):
    """`cancel(run_id)` deletes the run's unfinished Job; the run then ends cancelled, keeping the
    partial notebook the pod framed when it was stopped."""
    partial = notebook("print('first')")
    states = [([], RUNNING)] * 50
    api = ScriptedApi(states, ["first", *framed(partial)], {})
    api.hold = True
    executor = executor_with(api)
    run = asyncio.ensure_future(executor.run(spec(), notebook("x"), tmp_path))
    while not api.jobs:
        await asyncio.sleep(0.01)
    assert await executor.cancel(7)
    outcome = await asyncio.wait_for(run, 10)
    assert outcome.status == "cancelled" and api.deleted
    assert (tmp_path / "output.ipynb").read_text() == partial
    assert not await executor.cancel(7)  # nothing left to stop


async def test_a_cancelled_task_deletes_its_job(tmp_path):
    """When the service cancels the run's task (a cancel through another replica), the Job is
    deleted before the task ends."""
    api = ScriptedApi([([], PENDING)] * 1000, [], {})
    run = asyncio.ensure_future(executor_with(api).run(spec(), notebook("x"), tmp_path))
    while not api.jobs:
        await asyncio.sleep(0.01)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert api.deleted == list(api.jobs)
