"""The kubernetes backend's pipeline executor: each step runs as a batch/v1 Job (I/O).

Contract (see `pipelines.executor`):
- `run(spec, notebook, out_dir)` refuses, before anything is made, a run
  whose input can't travel (`jobs.InputTooLarge`: a notebook over 900 KiB)
  or whose image has no reference. A workflow's step first makes sure its
  run's folder has a claim (`run_folders.RunFolders.ensure`). Then it
  creates the step's Job (`jobs.job_manifest`), then the ConfigMap with the
  notebook, its parameters and the runner (`jobs.input_config_map`), owned
  by the Job so it goes with it (the pod's volume waits for it, the moment
  between the two). It follows the Job's pods, every attempt in turn
  (`job_follower.JobFollower`): each pod's log is appended to
  `out_dir/log.txt` while it runs, without the framed output notebook,
  which is written to `out_dir/output.ipynb` (the last one framed, also a
  partial one after a deadline or a cancel). It returns `finish_outcome(...)` (output.html, the error cell):
  succeeded, failed (the exit code; an OOMKilled container is the reason),
  timed_out (the Job's `DeadlineExceeded`), or cancelled (the Job deleted).
  A Job the controller hasn't ended `grace_seconds` after its deadline is
  deleted and the run timed out. If the run's task is cancelled, its Job is
  deleted and what the pod leaves within `CANCEL_COLLECT_SECONDS` is kept.
- `cancel(run_id)` deletes the run's unfinished Jobs (Foreground: their
  pods get SIGTERM and go first) wherever they were started; the run's
  `run` then ends `cancelled`. `end_run(run_id, status)` deletes or keeps
  the run's folder (`RunFolders.end`). `retries_itself`: a Job retries
  (`backoffLimit`), so the service calls `run` once. `prepare` stores
  nothing: a run needs nothing made ahead.
- Every API call goes through `jobs_api.JobsApi` (`ROLE_RULES`); waits
  are bounded (`job_follower.py`: a Job watch ends after `wait_seconds`,
  then the Job is read again; a failed call is tried again after a pause,
  never in a busy loop). The executor never executes a notebook itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import secrets
from collections.abc import Callable
from pathlib import Path

from ...pipelines.engine.executor import INPUT, LOG, OUTPUT, PARAMETERS, Executor, RunOutcome, finish_outcome
from ...pipelines.publishing.specs import RunSpec
from ...quantities import format_memory
from .job_follower import JobFollower
from .job_status import JobResult, job_deleting, job_finished, job_result
from .jobs import input_config_map, job_manifest, job_name, run_pod_settings
from .jobs_api import JobsApi
from .run_folders import ClaimsApi, RunFolderGone, RunFolders, RunFolderSettings
from .run_names import run_selector
from .translate import ClusterFacts

log = logging.getLogger(__name__)

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
WAIT_SECONDS = 30  # a Job watch ends after this; the Job is read again
GRACE_SECONDS = 300  # past a run's deadline, before the Job controller is taken to be gone
CANCEL_COLLECT_SECONDS = 40  # a cancelled run's pod gets 30 s to stop and frame its notebook


class JobExecutor(Executor):
    """Runs pipeline steps as Jobs in `namespace`; see the module's contract."""

    retries_itself = True  # a Job retries its pod (backoffLimit): the service runs it once

    def __init__(
        self,
        namespace: str,
        cluster: ClusterFacts,
        folders: RunFolderSettings,
        api_client: Callable[[], object],
        grace_seconds: int = GRACE_SECONDS,
        wait_seconds: int = WAIT_SECONDS,
    ):
        self.namespace, self.cluster, self.folders = namespace, cluster, folders
        self.grace_seconds, self.wait_seconds = grace_seconds, wait_seconds
        self._api_client_factory, self._api, self._run_folders = api_client, None, None
        self._running: dict[int, set[str]] = {}  # run id -> its Jobs started here, for cancel

    @classmethod
    def from_settings(cls, settings, cluster: ClusterFacts) -> JobExecutor:
        """In the service's pod: its service account's namespace and token (in-cluster config)."""
        k8s, pipelines = settings.kubernetes, settings.pipelines
        try:
            namespace = k8s.namespace or SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
        except OSError:
            raise ValueError(
                f"kubernetes.namespace: not set, and {SERVICE_ACCOUNT_NAMESPACE} can't be read (the"
                " service is not in a pod): name the namespace of the pipelines' Jobs"
            ) from None
        folders = RunFolderSettings(
            size=pipelines.run_folder_size,
            storage_class=pipelines.run_folder_storage_class,
            access_mode=pipelines.run_folder_access_mode,
        )
        return cls(namespace, cluster, folders, in_cluster_api_client)

    @property
    def api(self) -> JobsApi:
        if self._api is None:
            self._api = JobsApi(self._api_client_factory(), self.namespace)
        return self._api

    @property
    def run_folders(self) -> RunFolders:
        if self._run_folders is None:
            self._run_folders = RunFolders(ClaimsApi(self.api.client, self.namespace), self.folders)
        return self._run_folders

    async def close(self) -> None:
        """Close the API client's connections (the service's shutdown)."""
        if self._api is not None:
            await self._api.client.close()
            self._api, self._run_folders = None, None

    async def run(self, spec: RunSpec, notebook: str, out_dir: Path) -> RunOutcome:
        from kubernetes_asyncio.client.exceptions import ApiException

        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / INPUT).write_text(notebook)
        (out_dir / PARAMETERS).write_text(json.dumps(spec.parameters))
        (out_dir / LOG).write_text("")
        name, token = job_name(spec, secrets.token_hex(3)), secrets.token_hex(8)
        try:
            job = job_manifest(spec, name, run_pod_settings(spec, self.cluster), self.cluster, token)
            input_config_map(spec, name, notebook)  # refused here, before anything is made
        except ValueError as e:  # too large an input, an image without a reference
            (out_dir / LOG).write_text(f"{e}\n")
            return RunOutcome("failed", None, str(e))
        follower = JobFollower(self.api, name, out_dir / LOG, token, self.wait_seconds)
        self._running.setdefault(spec.run_id, set()).add(name)
        created = None
        try:
            if spec.step:  # a workflow's step: its run's shared folder
                await self.run_folders.ensure(spec, spec.run_folder_copy_of)
            created = await self.api.create_job(job)
            owner = (name, created["metadata"]["uid"])
            await self.api.create_config_map(input_config_map(spec, name, notebook, owner))
            log.info("run %s: created Job %s", spec.run_id, name)
            result = await self._follow_until_deadline(spec, follower)
        except ApiException as e:
            follower.close()
            if created is not None:  # nothing of the run is left running
                with contextlib.suppress(Exception):
                    await self.api.delete_job(name)
            with (out_dir / LOG).open("a") as f:
                f.write(f"the Kubernetes API refused the run: {e.status} {e.reason}\n{e.body}\n")
            return RunOutcome("failed", None, f"the Kubernetes API refused the run: {_api_message(e)}")
        except RunFolderGone as e:
            follower.close()
            (out_dir / LOG).write_text(f"{e}\n")
            return RunOutcome("failed", None, str(e))
        except asyncio.CancelledError:
            await self._stop(name, follower, out_dir)
            raise
        finally:
            follower.close()
            self._running[spec.run_id].discard(name)
            if not self._running[spec.run_id]:
                del self._running[spec.run_id]
        follower.write_output(out_dir / OUTPUT)
        return await asyncio.to_thread(self._outcome, spec, out_dir, result)

    async def _follow_until_deadline(self, spec: RunSpec, follower: JobFollower) -> JobResult:
        """The finished Job's result; one the controller still hasn't ended well after its
        deadline is deleted and reported as timed out."""
        try:
            job = await asyncio.wait_for(follower.follow(), spec.timeout + self.grace_seconds)
        except TimeoutError:
            with contextlib.suppress(Exception):
                await self.api.delete_job(follower.name)
            message = f"the Job controller had not ended the Job {self.grace_seconds} s after its deadline"
            return JobResult("timed_out", None, message)
        result = job_result(job, follower.ordered_pods())
        if job is None or (job_deleting(job) and not job_finished(job)):
            log.info("run %s: Job %s was deleted before it ended", spec.run_id, follower.name)
        return result

    async def _stop(self, name: str, follower: JobFollower, out_dir: Path) -> None:
        """The run's task was cancelled: delete its Job, and keep what its pod leaves meanwhile."""
        try:
            await self.api.delete_job(name)
            await asyncio.wait_for(follower.follow(), CANCEL_COLLECT_SECONDS)
        except Exception as e:  # the task ends cancelled whatever happens here
            log.warning("Job %s: stopping it after a cancel: %s", name, e)
        follower.write_output(out_dir / OUTPUT)

    async def cancel(self, run_id: int) -> bool:
        """Delete the run's unfinished Jobs (their pods go first); False when there was none."""
        names = set(self._running.get(run_id, ()))
        for job in await self.api.list_jobs(run_selector(run_id)):
            if not job_finished(job) and not job_deleting(job):
                names.add(job["metadata"]["name"])
        for name in sorted(names):
            await self.api.delete_job(name)
            log.info("run %s: deleted Job %s", run_id, name)
        return bool(names)

    async def end_run(self, run_id: int, status: str) -> None:
        """The run ended: its folder's claim goes, or stays while it may be repaired."""
        await self.run_folders.end(run_id, status)

    def _outcome(self, spec: RunSpec, out_dir: Path, result: JobResult) -> RunOutcome:
        code = 0 if result.status == "succeeded" else result.exit_code
        oom = ""
        if result.status == "failed" and result.out_of_memory:
            limit = spec.profile.resources.memory_limit
            shown = format_memory(limit) if limit else "?"
            oom = f"the kernel was killed for using more than its memory limit ({shown})"
        timed_out = result.status == "timed_out"
        outcome = finish_outcome(spec, out_dir, code, timed_out, oom)
        if result.status == "cancelled":
            return dataclasses.replace(outcome, status="cancelled", reason=result.reason)
        if timed_out and result.reason:
            return dataclasses.replace(outcome, reason=f"{outcome.reason}: {result.reason}")
        if result.status == "failed" and result.reason and not oom:
            return dataclasses.replace(outcome, reason=result.reason)
        return outcome


def job_executor(settings, cluster: ClusterFacts) -> JobExecutor:
    """The kubernetes backend's executor for the pipelines service (`backends.kubernetes.wiring`)."""
    return JobExecutor.from_settings(settings, cluster)


def in_cluster_api_client():
    """An API client with the pod's service account token (the service's Deployment)."""
    from kubernetes_asyncio import client, config

    configuration = client.Configuration()
    config.load_incluster_config(client_configuration=configuration)
    return client.ApiClient(configuration)


def _api_message(error) -> str:
    try:
        return json.loads(error.body)["message"]
    except (TypeError, ValueError, KeyError):
        return f"{error.status} {error.reason}"
