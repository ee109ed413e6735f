"""A workflow run's shared folder on Kubernetes: one claim per run, made, kept and deleted (I/O).

Contract:
- `run_folder_claim(spec, settings, copy_of)` (pure) is a workflow run's
  shared folder: one `PersistentVolumeClaim` per run
  (`run_names.run_folder_claim_name`) that every step's Job mounts at
  `images.RUN_FOLDER`; a repair's starts as a clone of the repaired run's
  claim (`dataSource`: CSI volume cloning, same storage class). Its size,
  class and access mode are `RunFolderSettings` (`pipelines.run_folder_*`).
- `ensure(spec, copy_of)` runs before each step's Job is created: it
  creates the run's claim unless an earlier step, or one running beside it,
  already did. A repair's claim (`copy_of`: the repaired run's id) starts as
  a clone of that run's claim, so the steps that run again see the files the
  kept steps wrote, as on the other backends; when that claim is no longer
  kept, `RunFolderGone` says so, and the step fails with that reason instead
  of waiting on a volume that can't be made.
- `end(run_id, status)` runs when a run ends. A succeeded run's claim is
  deleted. A run that can still be repaired (failed, timed out, cancelled,
  rejected) keeps its claim for `KEEP_FINISHED_SECONDS` (as long as its
  Jobs are kept), with the annotation `analysis-hub/delete-after`. Every
  claim past that mark is deleted then, so nothing accumulates.
- `ClaimsApi` holds every Kubernetes call made here (core/v1
  `persistentvolumeclaims`); `ROLE_RULES` allows exactly those, and the
  executor's Role includes them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ...pipelines.publishing.specs import RunSpec
from .run_names import (
    KEEP_FINISHED_SECONDS,
    LABEL_PREFIX,
    RUN_FOLDER_LABEL,
    run_annotations,
    run_folder_claim_name,
    run_labels,
    run_selector,
)

log = logging.getLogger(__name__)

ROLE_RULES = (
    {
        "apiGroups": [""],
        "resources": ["persistentvolumeclaims"],
        "verbs": ["get", "create", "list", "patch", "delete"],
    },
)
DELETE_AFTER = LABEL_PREFIX + "delete-after"
SUCCEEDED = "succeeded"  # nothing left to repair: the claim goes at once
FOLDER_SELECTOR = ",".join(f"{k}={v}" for k, v in RUN_FOLDER_LABEL.items())


@dataclass(frozen=True)
class RunFolderSettings:
    """A workflow run's shared folder: a volume claimed per run (`pipelines.run_folder_*`).
    ReadWriteOnce suits steps that run one after another (the volume follows them from node to
    node); steps in parallel on different nodes need ReadWriteMany."""

    size: str = "10Gi"
    storage_class: str | None = None  # None: the cluster's default
    access_mode: str = "ReadWriteOnce"


def run_folder_claim(spec: RunSpec, settings: RunFolderSettings, copy_of: str | None = None) -> dict:
    """The run's folder claim (pure), a clone of the claim `copy_of` if given."""
    claim_spec = {
        "accessModes": [settings.access_mode],
        "resources": {"requests": {"storage": settings.size}},
    }
    if settings.storage_class:
        claim_spec["storageClassName"] = settings.storage_class
    if copy_of:
        claim_spec["dataSource"] = {"kind": "PersistentVolumeClaim", "name": copy_of}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": run_folder_claim_name(spec.team, spec.pipeline, spec.run_id),
            "labels": {**run_labels(spec, with_step=False), **RUN_FOLDER_LABEL},
            "annotations": run_annotations(spec, with_step=False),
        },
        "spec": claim_spec,
    }


class RunFolderGone(RuntimeError):
    """A repair's source folder is no longer kept."""


class ClaimsApi:
    """PersistentVolumeClaims through the Kubernetes API: every call this module makes."""

    def __init__(self, api_client, namespace: str):
        from kubernetes_asyncio.client import CoreV1Api

        self.core = CoreV1Api(api_client)
        self.namespace = namespace

    async def exists(self, name: str) -> bool:
        from kubernetes_asyncio.client.exceptions import ApiException

        try:
            await self.core.read_namespaced_persistent_volume_claim(name, self.namespace)
        except ApiException as e:
            if e.status == 404:
                return False
            raise
        return True

    async def create(self, body: dict) -> bool:
        """False when a claim of that name already exists."""
        from kubernetes_asyncio.client.exceptions import ApiException

        try:
            await self.core.create_namespaced_persistent_volume_claim(self.namespace, body)
        except ApiException as e:
            if e.status == 409:
                return False
            raise
        return True

    async def names_and_annotations(self, label_selector: str) -> dict[str, dict[str, str]]:
        found = await self.core.list_namespaced_persistent_volume_claim(
            self.namespace, label_selector=label_selector
        )
        return {c.metadata.name: dict(c.metadata.annotations or {}) for c in found.items}

    async def annotate(self, name: str, annotations: dict[str, str]) -> None:
        await self.core.patch_namespaced_persistent_volume_claim(
            name,
            self.namespace,
            {"metadata": {"annotations": annotations}},
            _content_type="application/merge-patch+json",
        )

    async def delete(self, name: str) -> None:
        from kubernetes_asyncio.client.exceptions import ApiException

        try:
            await self.core.delete_namespaced_persistent_volume_claim(name, self.namespace)
        except ApiException as e:
            if e.status != 404:  # already gone is what was asked
                raise


class RunFolders:
    """The run folders' claims in the executor's namespace; see the module's contract."""

    def __init__(self, api: ClaimsApi, settings: RunFolderSettings):
        self.api, self.settings = api, settings

    async def ensure(self, spec: RunSpec, copy_of: int | None = None) -> None:
        source = run_folder_claim_name(spec.team, spec.pipeline, copy_of) if copy_of else None
        name = run_folder_claim_name(spec.team, spec.pipeline, spec.run_id)
        if source and not await self.api.exists(name) and not await self.api.exists(source):
            raise RunFolderGone(
                f"the run folder of run {copy_of}, which this repair starts from, is no longer kept"
                f" (a run's folder is deleted {KEEP_FINISHED_SECONDS // 86400} days after it ends):"
                " start a new run instead"
            )
        if await self.api.create(run_folder_claim(spec, self.settings, source)):
            log.info("run %s: created the run folder's claim %s", spec.run_id, name)

    async def end(self, run_id: int, status: str) -> None:
        claims = await self.api.names_and_annotations(f"{run_selector(run_id)},{FOLDER_SELECTOR}")
        for name in claims:
            if status == SUCCEEDED:
                await self.api.delete(name)
                log.info("run %s: deleted the run folder's claim %s", run_id, name)
            else:  # it may still be repaired
                until = datetime.now(UTC) + timedelta(seconds=KEEP_FINISHED_SECONDS)
                await self.api.annotate(name, {DELETE_AFTER: until.isoformat(timespec="seconds")})
        await self.delete_expired()

    async def delete_expired(self) -> None:
        now = datetime.now(UTC)
        for name, marks in (await self.api.names_and_annotations(FOLDER_SELECTOR)).items():
            mark = marks.get(DELETE_AFTER)
            if mark and _time(mark) <= now:
                await self.api.delete(name)
                log.info("deleted the run folder's claim %s, kept until %s", name, mark)


def _time(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:  # not ours, or mangled: keep the claim rather than guess
        return datetime.max.replace(tzinfo=UTC)
