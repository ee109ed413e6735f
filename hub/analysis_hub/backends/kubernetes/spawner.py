"""KubeSpawner with its profile list drawn from the shared catalog, per user's groups.

Contract: `CatalogKubeSpawner.profile_list` is `catalog_profile_list`, a
callable that KubeSpawner evaluates for the form and again in
`load_user_options`; it returns only the profiles the user's groups may use,
translated by `profiles.py`. The catalog is read through `CatalogSource`, so
a catalog changed on disk (a `helm upgrade` updating the mounted ConfigMap)
applies to the next form and spawn, and a broken one keeps the last good.

A request is handled in two steps, in JupyterHub's order. JupyterHub's
`apply_user_options` hook, run before `start()`, checks it exactly as the
other backends do (`catalog_spawner.apply_profile_request`): an unknown or
hidden profile, a bad choice, an extra key (an image, say) or a server over
the user's limits is refused with 400 before anything starts, and the chosen
profile and idle timeout are recorded. Then KubeSpawner's `load_user_options`,
inside `start()`, applies the profile and its choices to the pod. Having the
hook also tells JupyterHub the options are handled: without one it logs
"Received unhandled user_options" at every spawn.

Team folders are per user, not per profile: `get_pod_manifest` adds the
claims of the user's team folders (`profiles.team_volumes`) to every pod it
builds, whatever the profile, and nothing of the teams the user is not in.
"""

from __future__ import annotations

from kubernetes_asyncio.client.models import V1Volume, V1VolumeMount
from kubespawner import KubeSpawner
from kubespawner.utils import get_k8s_model
from traitlets import Instance, default

from ...idle_timeouts import IDLE_TIMEOUT_KEY
from ..catalog_spawner import CatalogSpawner, apply_profile_request
from .profiles import ClusterFacts, profile_list_entries, team_volumes


class CatalogKubeSpawner(CatalogSpawner, KubeSpawner):
    backend_name = "kubernetes"
    cluster = Instance(
        ClusterFacts, args=({},), config=True, help="the cluster's facts (kubernetes.wiring.cluster_facts)"
    )

    @default("profile_list")
    def _default_profile_list(self):
        return catalog_profile_list

    @default("apply_user_options")
    def _default_apply_user_options(self):
        # JupyterHub's step for checking a request before start() (see the docstring): a
        # refusal is a 400 before anything starts, as on the other backends.
        return check_profile_request

    async def start(self):
        # Defined here so that the catalog spawner's metrics time it (spawn_metrics.timed_start).
        return await super().start()

    async def load_user_options(self):
        # Called by KubeSpawner's start(), after the hook checked the request. KubeSpawner
        # applies the profile and its choices; the idle timeout is the culler's alone (its
        # form entry carries no override), so KubeSpawner doesn't see it.
        recorded = self.user_options
        self.user_options = {k: v for k, v in recorded.items() if k != IDLE_TIMEOUT_KEY}
        try:
            await super().load_user_options()
        finally:
            self.user_options = recorded

    async def get_pod_manifest(self):
        pod = await super().get_pod_manifest()
        volumes, mounts = team_volumes(self.team_folders, self.cluster)
        if volumes:
            pod.spec.volumes = [*(pod.spec.volumes or []), *(get_k8s_model(V1Volume, v) for v in volumes)]
            server = pod.spec.containers[0]
            server.volume_mounts = [
                *(server.volume_mounts or []),
                *(get_k8s_model(V1VolumeMount, m) for m in mounts),
            ]
        return pod


def check_profile_request(spawner: CatalogKubeSpawner, user_options: dict) -> None:
    """`apply_user_options`: the catalog's check and record, shared with the other backends."""
    apply_profile_request(spawner, user_options)


def catalog_profile_list(spawner: CatalogKubeSpawner) -> list[dict]:
    """KubeSpawner's `profile_list` for this spawner's user: only their groups' profiles.

    A module-level function, so that configuration can name it explicitly: the
    Zero to JupyterHub chart sets `KubeSpawner.profile_list` from its values
    (an empty list by default), which would hide a `@default`.
    """
    catalog = spawner.catalog
    return profile_list_entries(
        catalog.allowed_for(spawner.user_groups),
        spawner.cluster,
        catalog.default.slug,
        spawner.site_idle_timeout,
    )
