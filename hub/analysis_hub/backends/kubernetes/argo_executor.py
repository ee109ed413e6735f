"""The kubernetes backend's pipeline executor: each run is an Argo Workflow (I/O).

Contract (see `pipelines.executor`):
- `prepare(spec)`, when a version is deployed, creates or updates the
  version's `WorkflowTemplate` (get, then create, or update with the
  resourceVersion it read). `run` prepares too, so a run never depends on a
  deploy made before this executor existed.
- `run(spec, notebook, out_dir)` uploads the version's notebook to the
  artifact store, submits a `Workflow` from the template (labelled with team,
  pipeline, version and run id, with the run's parameters, timeout and
  retries), follows it through the Kubernetes API (get, then watch from the
  resourceVersion read, again after every watch that ends) until it
  finishes (a workflow's step first makes sure its run's folder has a
  claim: `run_folders.RunFolders.ensure`), downloads `output.ipynb` and `log.txt` that papermill wrote from
  the pod into `out_dir`, and returns the same `RunOutcome` as a local run
  (`finish_outcome`: output.html, the error cell). Status: succeeded, failed,
  timed_out (a deadline), or cancelled (a stopped Workflow).
- `cancel(run_id)` (optional in the executor protocol) stops the run's
  Workflows with Argo's stop (`spec.shutdown: Stop`); the run then ends as
  cancelled. `end_run(run_id, status)` (optional too) deletes or keeps the
  run's folder (`RunFolders.end`).
- `ArgoApi` is every Kubernetes API call this module makes, `ClaimsApi`
  those of `run_folders`; `ARGO_ROLE_RULES` is the namespaced Role that
  allows exactly those calls (the chart's Role is checked against it). No
  pod logs are read: the log is in the artifact store.
- The executor never executes a notebook itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp

from ...pipelines.executor import INPUT, LOG, OUTPUT, PARAMETERS, RunOutcome, finish_outcome
from ...pipelines.specs import RunSpec
from ...quantities import format_memory
from .artifact_store import ArtifactStore, boto3_client
from .profiles import ClusterFacts
from .run_folders import ROLE_RULES as CLAIM_RULES
from .run_folders import ClaimsApi, RunFolderGone, RunFolders
from .sensors import sensor_for
from .workflow_dag import dag_template
from .workflows import (
    GROUP,
    VERSION,
    WorkflowResult,
    WorkflowSettings,
    artifact_urls,
    out_of_memory,
    run_selector,
    template_name,
    version_pod,
    workflow,
    workflow_name,
    workflow_result,
    workflow_template,
)

log = logging.getLogger(__name__)

# The namespaced Role the pipelines service needs, as Kubernetes RBAC rules.
ARGO_ROLE_RULES = (
    {"apiGroups": [GROUP], "resources": ["workflowtemplates"], "verbs": ["get", "create", "update"]},
    {"apiGroups": [GROUP], "resources": ["workflows"], "verbs": ["create", "get", "list", "watch", "patch"]},
    *CLAIM_RULES,
)
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
# What each run's Workflow sets for itself, over its template's (`workflows.workflow`).
RUN_VALUES = ("arguments", "activeDeadlineSeconds")
WATCH_SECONDS = 300  # a watch the server ends after this; the executor reads the Workflow and watches again


class ArgoApi:
    """The Argo custom resources through the Kubernetes API: every call the executor makes."""

    def __init__(self, api_client, namespace: str):
        from kubernetes_asyncio.client import CustomObjectsApi

        self.objects = CustomObjectsApi(api_client)
        self.namespace = namespace

    def _at(self, plural: str) -> tuple:
        return (GROUP, VERSION, self.namespace, plural)

    async def get_template(self, name: str) -> dict | None:
        at = self._at("workflowtemplates")
        return await self._maybe(self.objects.get_namespaced_custom_object(*at, name))

    async def create_template(self, body: dict) -> dict:
        return await self.objects.create_namespaced_custom_object(*self._at("workflowtemplates"), body)

    async def update_template(self, name: str, body: dict) -> dict:
        return await self.objects.replace_namespaced_custom_object(*self._at("workflowtemplates"), name, body)

    async def create_workflow(self, body: dict) -> dict:
        return await self.objects.create_namespaced_custom_object(*self._at("workflows"), body)

    async def get_workflow(self, name: str) -> dict | None:
        return await self._maybe(self.objects.get_namespaced_custom_object(*self._at("workflows"), name))

    async def list_workflows(self, label_selector: str) -> list[dict]:
        found = await self.objects.list_namespaced_custom_object(
            *self._at("workflows"), label_selector=label_selector
        )
        return found.get("items") or []

    async def watch_workflow(self, name: str, resource_version: str) -> AsyncIterator[dict]:
        """The Workflow's events after `resource_version`, until the server ends the watch."""
        response = await self.objects.list_namespaced_custom_object(
            *self._at("workflows"),
            field_selector=f"metadata.name={name}",
            resource_version=resource_version,
            watch=True,
            timeout_seconds=WATCH_SECONDS,
            _preload_content=False,
            _request_timeout=WATCH_SECONDS + 30,
        )
        async with response:
            async for line in response.content:
                if line.strip():
                    yield json.loads(line)

    async def stop_workflow(self, name: str) -> dict:
        return await self.objects.patch_namespaced_custom_object(
            *self._at("workflows"),
            name,
            {"spec": {"shutdown": "Stop"}},
            _content_type="application/merge-patch+json",  # custom resources take no strategic merge
        )

    @staticmethod
    async def _maybe(call) -> dict | None:
        from kubernetes_asyncio.client.exceptions import ApiException

        try:
            return await call
        except ApiException as e:
            if e.status == 404:
                return None
            raise


class ArgoExecutor:
    """Runs pipelines as Argo Workflows in `namespace`; see the module's contract."""

    retries_itself = True  # Argo's retryStrategy retries within one Workflow: the service runs once

    def __init__(
        self,
        namespace: str,
        cluster: ClusterFacts,
        settings: WorkflowSettings,
        api_client: Callable[[], object],
        s3_client: Callable[[], object] | None = None,
        grace_seconds: int = 300,
    ):
        self.namespace, self.cluster, self.settings = namespace, cluster, settings
        self._api_client_factory, self._api, self._folders = api_client, None, None
        self.store = ArtifactStore(s3_client or boto3_client(settings.s3_endpoint_url, settings.s3_region))
        self._running: dict[int, str] = {}  # run id -> Workflow name, for cancel
        self.grace_seconds = grace_seconds  # past a run's deadline, before Argo is taken to be gone

    @classmethod
    def from_settings(cls, settings, cluster: ClusterFacts) -> ArgoExecutor:
        """In the service's pod: its service account's namespace and token (in-cluster config)."""
        k8s, pipelines = settings.kubernetes, settings.pipelines
        try:
            namespace = k8s.namespace or SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
        except OSError:
            raise ValueError(
                f"kubernetes.namespace: not set, and {SERVICE_ACCOUNT_NAMESPACE} can't be read (the"
                " service is not in a pod): name the namespace of the pipelines' Workflows"
            ) from None
        workflow_settings = WorkflowSettings(
            output_url=pipelines.output_url,
            executor_service_account=k8s.workflow_service_account,
            s3_endpoint_url=pipelines.s3_endpoint_url,
            s3_credentials_secret=pipelines.s3_credentials_secret,
            s3_region=pipelines.s3_region,
            run_folder_size=pipelines.run_folder_size,
            run_folder_storage_class=pipelines.run_folder_storage_class,
            run_folder_access_mode=pipelines.run_folder_access_mode,
        )
        return cls(namespace, cluster, workflow_settings, in_cluster_api_client)

    @property
    def api(self) -> ArgoApi:
        if self._api is None:
            self._api = ArgoApi(self._api_client_factory(), self.namespace)
        return self._api

    @property
    def run_folders(self) -> RunFolders:
        if self._folders is None:
            self._folders = RunFolders(ClaimsApi(self.api.objects.api_client, self.namespace), self.settings)
        return self._folders

    async def close(self) -> None:
        """Close the API client's connections (the service's shutdown)."""
        if self._api is not None:
            await self._api.objects.api_client.close()
            self._api, self._folders = None, None

    def template_for(self, spec: RunSpec) -> dict:
        """The version's WorkflowTemplate, as `prepare` stores it (for `GET .../argo`)."""
        return workflow_template(spec, version_pod(spec, self.cluster), self.settings)

    def dag_template_for(
        self,
        team: str,
        pipeline: str,
        version: int,
        steps: list,
        run_parameters: dict,
        timeout: int,
        retries: int,
    ) -> dict:
        """A workflow version's WorkflowTemplate, a DAG of its steps (`workflow_dag.dag_template`)."""
        return dag_template(
            team, pipeline, version, steps, run_parameters, timeout, retries, self.cluster, self.settings
        )

    def sensor_for(self, upstream: str, on: str, template: str) -> dict:
        """The Argo Events Sensor a chained trigger (`after` upstream "team/name") would be, as an
        export: the service itself starts chained runs (pipelines.chains)."""
        team, _, name = upstream.partition("/")
        return sensor_for(team, name, on, template)

    async def prepare(self, spec: RunSpec) -> None:
        await self._store_template(spec)

    async def _store_template(self, spec: RunSpec, ignoring: tuple[str, ...] = ()) -> None:
        """Create the template, or update it where it differs in more than `ignoring` (spec keys).
        Runs racing to store it (409: created or updated meanwhile) read it again."""
        from kubernetes_asyncio.client.exceptions import ApiException

        body = self.template_for(spec)
        name = template_name(spec)
        for attempt in range(3):
            current = await self.api.get_template(name)
            try:
                if current is None:
                    await self.api.create_template(body)
                    log.info("created WorkflowTemplate %s", name)
                elif _differs(current, body, ignoring):
                    body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                    await self.api.update_template(name, body)
                    log.info("updated WorkflowTemplate %s", name)
                return
            except ApiException as e:
                if e.status != 409 or attempt == 2:
                    raise

    async def run(self, spec: RunSpec, notebook: str, out_dir: Path) -> RunOutcome:
        from kubernetes_asyncio.client.exceptions import ApiException

        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / INPUT).write_text(notebook)
        (out_dir / PARAMETERS).write_text(json.dumps(spec.parameters))
        name = workflow_name(spec, secrets.token_hex(3))
        urls = artifact_urls(spec, name, self.settings)
        self._running[spec.run_id] = name
        try:
            # Each Workflow sets its own parameters and deadline: only a change beyond them (the
            # service's settings since the deploy) updates the template under the runs.
            await self._store_template(spec, ignoring=RUN_VALUES)
            if spec.step:  # a workflow's step: its run's shared folder
                await self.run_folders.ensure(spec, spec.run_folder_copy_of)
            await self.store.put_text(urls.input, notebook)
            await self.api.create_workflow(workflow(spec, name, version_pod(spec, self.cluster)))
            log.info("run %s: submitted Workflow %s", spec.run_id, name)
            result = workflow_result(await self._follow_until_deadline(spec, name))
        except ApiException as e:
            (out_dir / LOG).write_text(f"{e.status} {e.reason}\n{e.body}\n")
            return RunOutcome("failed", None, f"the Kubernetes API refused the run: {_api_message(e)}")
        except RunFolderGone as e:
            (out_dir / LOG).write_text(f"{e}\n")
            return RunOutcome("failed", None, str(e))
        finally:
            self._running.pop(spec.run_id, None)
        await self.store.download(urls.output, out_dir / OUTPUT)
        if not await self.store.download(urls.log, out_dir / LOG):
            # The pod never ran the notebook (image pull, scheduling, a stop before the start):
            # Argo's messages are the log.
            (out_dir / LOG).write_text("\n".join(result.messages or (result.reason,)) + "\n")
        return await asyncio.to_thread(self._outcome, spec, out_dir, result)

    async def _follow_until_deadline(self, spec: RunSpec, name: str) -> dict:
        """The finished Workflow; one that Argo still hasn't ended well after its deadline (the
        controller down) is stopped and reported as timed out."""
        try:
            return await asyncio.wait_for(self._follow(name), spec.timeout + self.grace_seconds)
        except TimeoutError:
            await self.api.stop_workflow(name)
            message = f"Argo had not ended the Workflow {self.grace_seconds} s after its deadline"
            return {"spec": {}, "status": {"phase": "Failed", "message": f"{message}: exceeded its deadline"}}

    async def cancel(self, run_id: int) -> bool:
        """Stop the run's Workflows (Argo's stop); False when there is none to stop."""
        names = {self._running[run_id]} if run_id in self._running else set()
        for item in await self.api.list_workflows(run_selector(run_id)):
            if workflow_result(item) is None:
                names.add(item["metadata"]["name"])
        for name in sorted(names):
            await self.api.stop_workflow(name)
            log.info("run %s: stopping Workflow %s", run_id, name)
        return bool(names)

    async def end_run(self, run_id: int, status: str) -> None:
        """The run ended: its folder's claim goes, or stays while it may be repaired."""
        await self.run_folders.end(run_id, status)

    async def _follow(self, name: str) -> dict:
        """The Workflow once finished: read it, watch it from there, read it again when a watch ends."""
        wf = await self._get(name)
        while workflow_result(wf) is None:
            try:
                async for event in self.api.watch_workflow(name, wf["metadata"]["resourceVersion"]):
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        wf = event["object"]
                        if workflow_result(wf) is not None:
                            return wf
                    elif event.get("type") == "DELETED":
                        return _lost(wf, "the Workflow was deleted before it finished")
                    elif event.get("type") == "ERROR":
                        break  # e.g. 410 Gone: the resourceVersion is too old; read it again
            except (aiohttp.ClientError, OSError, TimeoutError) as e:  # the API went away mid-watch
                log.warning("watching Workflow %s: %s; reading it again", name, e)
                await asyncio.sleep(5)
            wf = await self._get(name)
        return wf

    async def _get(self, name: str) -> dict:
        wf = await self.api.get_workflow(name)
        return wf if wf is not None else _lost({"metadata": {"name": name}}, "the Workflow was deleted")

    def _outcome(self, spec: RunSpec, out_dir: Path, result: WorkflowResult) -> RunOutcome:
        code = 0 if result.status == "succeeded" else (result.exit_code or None)
        oom = ""
        if result.status == "failed" and out_of_memory(result):
            limit = format_memory(spec.memory_limit) if spec.memory_limit else "?"
            oom = f"the kernel was killed for using more than its memory limit ({limit})"
        outcome = finish_outcome(spec, out_dir, code, result.status == "timed_out", oom)
        if result.status == "cancelled":
            return dataclasses.replace(outcome, status="cancelled", reason=result.reason)
        if result.status == "failed" and code is None and not oom:
            return dataclasses.replace(outcome, reason=result.reason)
        return outcome


def argo_executor(settings, cluster: ClusterFacts) -> ArgoExecutor:
    """The kubernetes backend's executor for the pipelines service (`backends.kubernetes.wiring`)."""
    return ArgoExecutor.from_settings(settings, cluster)


def in_cluster_api_client():
    """An API client with the pod's service account token (the service's Deployment)."""
    from kubernetes_asyncio import client, config

    configuration = client.Configuration()
    config.load_incluster_config(client_configuration=configuration)
    return client.ApiClient(configuration)


def _differs(current: dict, wanted: dict, ignoring: tuple[str, ...] = ()) -> bool:
    meta = current.get("metadata") or {}
    spec = {k: v for k, v in (current.get("spec") or {}).items() if k not in ignoring}
    return spec != {k: v for k, v in wanted["spec"].items() if k not in ignoring} or any(
        meta.get(k) != wanted["metadata"].get(k) for k in ("labels", "annotations")
    )


def _api_message(error) -> str:
    try:
        return json.loads(error.body)["message"]
    except (TypeError, ValueError, KeyError):
        return f"{error.status} {error.reason}"


def _lost(wf: dict, message: str) -> dict:
    return {**wf, "status": {"phase": "Error", "message": message}}
