"""KubeSpawner given the shared catalog: the same form, check and profile as every backend.

Contract, on top of KubeSpawner:
- The spawn form, `user_options` and their check are the catalog's
  (`catalog_spawner.CatalogProfileForm`, as on the local and docker backends):
  an unknown or hidden profile, a bad choice or idle timeout, an extra key (an
  image, say) or a server over the user's limits is refused with 400 before
  anything starts, and the resolved profile is recorded. GPUs are the
  cluster's to schedule, so none is refused for want of one here: a pod that
  can't be placed stays Pending and its progress says why.
- KubeSpawner's own profile list is not used (`profile_list` is empty). Where
  its `start()` would apply a profile (`load_user_options`), the resolved
  profile's `translate.server_traits` are set on top of the configured traits
  (the chart's): dicts merged, anything else replaced. Each start begins
  again from the configured values, so a server restarted with another
  profile keeps nothing of the last one.
- The catalog is read through `CatalogSource`, so a catalog changed on disk
  (a `helm upgrade` updating the mounted ConfigMap) applies to the next form
  and spawn, and a broken one keeps the last good.

Team folders are per user, not per profile: `get_pod_manifest` adds the
claims of the user's team folders (`translate.team_volumes`) to every pod it
builds, whatever the profile, and nothing of the teams the user is not in.
"""

from __future__ import annotations

import copy

from kubernetes_asyncio.client.models import V1Volume, V1VolumeMount
from kubespawner import KubeSpawner
from kubespawner.utils import get_k8s_model
from traitlets import Instance

from ..catalog_spawner import CatalogProfileForm
from .translate import ClusterFacts, server_traits, team_volumes


class CatalogKubeSpawner(CatalogProfileForm, KubeSpawner):
    backend_name = "kubernetes"
    cluster = Instance(
        ClusterFacts, args=({},), config=True, help="the cluster's facts (kubernetes.wiring.cluster_facts)"
    )

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._configured: dict = {}  # each trait a profile set, as configuration left it
        self._from_profile: set[str] = set()

    def gpus_here(self) -> None:
        return None  # the cluster's scheduler places GPU pods; nothing is counted on the hub

    async def start(self):
        # Defined here so that the catalog spawner's metrics time it (hub_metrics.timed_start).
        return await super().start()

    async def load_user_options(self):
        # KubeSpawner's start() calls this first, where it would apply a profile_list entry.
        self.set_profile_traits(server_traits(self.resolve_default_profile(), self.cluster))

    def set_profile_traits(self, traits: dict) -> None:
        for name in traits.keys() - self._configured.keys():
            self._configured[name] = copy.deepcopy(getattr(self, name))
        for name in self._from_profile - traits.keys():
            setattr(self, name, copy.deepcopy(self._configured[name]))
        for name, value in traits.items():
            setattr(self, name, on_top_of(copy.deepcopy(self._configured[name]), value))
        self._from_profile = set(traits)

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


def on_top_of(configured, value):
    """A profile's trait value over the configured one: dicts merge (the chart's home volume, the
    hub's environment), a keyed dict extends a configured list, anything else replaces."""
    if isinstance(value, dict) and isinstance(configured, dict):
        return {**configured, **value}
    if isinstance(value, dict) and isinstance(configured, list):
        return [*configured, *value.values()]
    return value
