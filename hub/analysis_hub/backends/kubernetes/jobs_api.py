"""Every Kubernetes API call the Job executor makes, and the Role that allows exactly those (I/O).

Contract:
- `JobsApi(api_client, namespace)` is the executor's only way to the API
  (kubernetes_asyncio): batch/v1 Jobs (create, get, list, watch one until
  its next change, delete with `propagationPolicy: Foreground` so its pods
  go first), core/v1 ConfigMaps (create), pods (list) and their logs
  (`pods/log` get: the notebook container's, followed or whole). It
  answers the API's JSON (camelCase dicts, as `job_status` reads them); a
  missing object is None. Every call has a time-out: `CALL_SECONDS` for
  plain calls, a watch ends after its `timeout`, and a followed log that
  stays silent for `LOG_IDLE_SECONDS` ends (the caller looks at the pod and
  reads on).
- `ROLE_RULES` are the namespaced Role's rules for exactly those calls plus
  the run folders' claims (`run_folders.ROLE_RULES`); the chart's
  pipelines Role (helm/analysis-hub/templates/pipelines-rbac.yaml) must be
  equal to them, which a unit test checks.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from .jobs import CONTAINER
from .run_folders import ROLE_RULES as CLAIM_RULES

ROLE_RULES = (
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get", "list", "watch", "delete"]},
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    *CLAIM_RULES,
)
CALL_SECONDS = 60  # any plain call
CONNECT_SECONDS = 30
LOG_IDLE_SECONDS = 300  # a followed log silent this long is read again (a cell may compute for hours)


class JobsApi:
    """Jobs, ConfigMaps, pods and pod logs in one namespace: every call the executor makes."""

    def __init__(self, api_client, namespace: str):
        from kubernetes_asyncio.client import BatchV1Api, CoreV1Api

        self.client = api_client
        self.batch = BatchV1Api(api_client)
        self.core = CoreV1Api(api_client)
        self.namespace = namespace

    def _json(self, model) -> dict:
        return self.client.sanitize_for_serialization(model)

    async def create_job(self, body: dict) -> dict:
        return self._json(
            await self.batch.create_namespaced_job(self.namespace, body, _request_timeout=CALL_SECONDS)
        )

    async def get_job(self, name: str) -> dict | None:
        call = self.batch.read_namespaced_job(name, self.namespace, _request_timeout=CALL_SECONDS)
        return await self._maybe(call)

    async def list_jobs(self, label_selector: str) -> list[dict]:
        found = await self.batch.list_namespaced_job(
            self.namespace, label_selector=label_selector, _request_timeout=CALL_SECONDS
        )
        return [self._json(item) for item in found.items]

    async def next_job_change(self, name: str, resource_version: str, timeout: int) -> dict | None:
        """The Job's next watch event after `resource_version` (`type`, `object`), or None when
        none came within `timeout` seconds or the watch must start again (410 Gone)."""
        response = await self.batch.list_namespaced_job(
            self.namespace,
            field_selector=f"metadata.name={name}",
            resource_version=resource_version,
            watch=True,
            timeout_seconds=timeout,
            _preload_content=False,
            _request_timeout=timeout + CONNECT_SECONDS,
        )
        async with response:
            await _check(response)
            async for line in response.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                    return event
                return None  # ERROR (e.g. the resourceVersion is too old) or BOOKMARK: read again
        return None

    async def delete_job(self, name: str) -> bool:
        """Delete the Job, its pods first (Foreground); False when it was already gone."""
        from kubernetes_asyncio.client.exceptions import ApiException

        try:
            await self.batch.delete_namespaced_job(
                name, self.namespace, propagation_policy="Foreground", _request_timeout=CALL_SECONDS
            )
        except ApiException as e:
            if e.status == 404:
                return False
            raise
        return True

    async def create_config_map(self, body: dict) -> dict:
        return self._json(
            await self.core.create_namespaced_config_map(self.namespace, body, _request_timeout=CALL_SECONDS)
        )

    async def list_pods(self, label_selector: str) -> list[dict]:
        found = await self.core.list_namespaced_pod(
            self.namespace, label_selector=label_selector, _request_timeout=CALL_SECONDS
        )
        return [self._json(item) for item in found.items]

    async def pod_log(self, name: str, follow: bool) -> AsyncIterator[bytes]:
        """The notebook container's log from its start, in chunks: while it runs (`follow`), or
        all of it at once. A followed log ends when the container does, or after
        `LOG_IDLE_SECONDS` without output (aiohttp's read time-out)."""
        response = await self.core.read_namespaced_pod_log(
            name,
            self.namespace,
            container=CONTAINER,
            follow=follow,
            _preload_content=False,
            _request_timeout=(CONNECT_SECONDS, LOG_IDLE_SECONDS if follow else CALL_SECONDS),
        )
        async with response:
            await _check(response)
            async for chunk in response.content.iter_any():
                yield chunk

    async def _maybe(self, call) -> dict | None:
        from kubernetes_asyncio.client.exceptions import ApiException

        try:
            return self._json(await call)
        except ApiException as e:
            if e.status == 404:
                return None
            raise


async def _check(response) -> None:
    """A streamed response is not checked by the client: refuse an error status as it would."""
    if response.status >= 300:
        from kubernetes_asyncio.client.exceptions import ApiException

        error = ApiException(status=response.status, reason=response.reason)
        error.body = await response.text()
        raise error
