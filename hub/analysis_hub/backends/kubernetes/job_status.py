"""A step's Job and its pods, as the API reports them, read as a run's state (pure).

Contract (every function takes the API's JSON: camelCase dicts):
- `job_finished(job)`: the Job has its terminal condition, `Complete` or
  `Failed` (the Job controller sets it once the pods have stopped).
- `job_deleting(job)`: the Job is gone (None) or being deleted (a cancel).
- `container_state(pod)`: the notebook container's state, one of
  `waiting`, `running`, `terminated` (None before the pod has one);
  `started(pod)` and `terminated(pod)` ask it.
- `pod_problem(pod)`: why a pod that never ran its notebook didn't: the
  container's waiting reason (ErrImagePull, ImagePullBackOff,
  CreateContainerConfigError...), the scheduler's message (no node with a
  free GPU...), the pod's own (Evicted...); "" when there is none.
- `job_result(job, pods)` maps the Job and its pods (every attempt, oldest
  first) to a `JobResult`: Complete -> succeeded with exit code 0; a Job
  deleted while it ran -> cancelled; Failed with the reason
  `DeadlineExceeded` -> timed_out; any other Failed -> failed, with the last
  attempt's exit code, and `out_of_memory` when its container was
  OOMKilled. `reason` says what the log can't: why no pod ran the notebook,
  or the Job's own message.
"""

from __future__ import annotations

from dataclasses import dataclass

from .jobs import CONTAINER

COMPLETE, FAILED = "Complete", "Failed"
DEADLINE = "DeadlineExceeded"
NOT_A_PROBLEM = (None, "ContainerCreating", "PodInitializing")  # a container on its way


@dataclass(frozen=True)
class JobResult:
    status: str  # succeeded | failed | timed_out | cancelled
    exit_code: int | None
    reason: str = ""
    out_of_memory: bool = False


def _condition(job: dict | None, kind: str) -> dict | None:
    for condition in ((job or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            return condition
    return None


def job_finished(job: dict | None) -> bool:
    return _condition(job, COMPLETE) is not None or _condition(job, FAILED) is not None


def job_deleting(job: dict | None) -> bool:
    return job is None or bool((job.get("metadata") or {}).get("deletionTimestamp"))


def _container_status(pod: dict) -> dict:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == CONTAINER:
            return status
    return {}


def container_state(pod: dict) -> tuple[str, dict] | None:
    """The notebook container's state: ("waiting" | "running" | "terminated", its details)."""
    state = _container_status(pod).get("state") or {}
    for kind in ("terminated", "running", "waiting"):
        if state.get(kind) is not None:
            return kind, state[kind]
    return None


def started(pod: dict) -> bool:
    state = container_state(pod)
    return state is not None and state[0] in ("running", "terminated")


def terminated(pod: dict) -> bool:
    state = container_state(pod)
    phase = (pod.get("status") or {}).get("phase")
    return (state is not None and state[0] == "terminated") or phase in ("Succeeded", "Failed")


def exit_of(pod: dict) -> tuple[int | None, str]:
    """The notebook container's exit code and reason (OOMKilled, Error...), once terminated."""
    state = container_state(pod)
    if state is None or state[0] != "terminated":
        return None, ""
    return state[1].get("exitCode"), state[1].get("reason") or ""


def pod_problem(pod: dict) -> str:
    status = pod.get("status") or {}
    state = container_state(pod)
    if state is not None and state[0] == "waiting" and state[1].get("reason") not in NOT_A_PROBLEM:
        return f"{state[1]['reason']}: {state[1].get('message') or ''}".rstrip(": ")
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return f"the pod could not be scheduled: {condition.get('message') or condition.get('reason')}"
    if status.get("reason"):
        return f"{status['reason']}: {status.get('message') or ''}".rstrip(": ")
    return ""


def job_result(job: dict | None, pods: list[dict]) -> JobResult:
    ran = [p for p in pods if started(p)]
    code, container_reason = exit_of(ran[-1]) if ran else (None, "")
    if _condition(job, COMPLETE) is not None:
        return JobResult("succeeded", 0)
    failed = _condition(job, FAILED)
    problem = next((pod_problem(p) for p in reversed(pods) if pod_problem(p)), "")
    if failed is None:  # deleted before it ended: a cancel (or someone's kubectl delete)
        return JobResult("cancelled", code, "cancelled: the run's Job was deleted")
    if failed.get("reason") == DEADLINE:
        reason = "" if ran else f"no pod ran the notebook: {problem or failed.get('message') or DEADLINE}"
        return JobResult("timed_out", code, reason)
    reason = problem if not ran else ""
    if not reason and code is None:
        reason = f"{failed.get('reason') or FAILED}: {failed.get('message') or 'the Job failed'}"
    oom = container_reason == "OOMKilled"
    return JobResult("failed", code, reason, out_of_memory=oom)
