"""KubeSpawner with its profile list drawn from the shared catalog, per user's groups.

Contract: `CatalogKubeSpawner.profile_list` is `catalog_profile_list`, a
callable that KubeSpawner evaluates for the form and again in
`load_user_options`; it returns only the profiles the user's groups may use,
translated by `profiles.py`. The catalog is read through `CatalogSource`, so
a catalog changed on disk (a `helm upgrade` updating the mounted ConfigMap)
applies to the next form and spawn, and a broken one keeps the last good. Before
KubeSpawner applies a request, `select_profile` checks it exactly as the other
backends do, so an unknown or hidden profile, a bad choice or an extra key
(an image, say) is refused with 400 and nothing is created.
"""

from __future__ import annotations

from kubespawner import KubeSpawner
from tornado import web
from traitlets import Instance, default

from ...selection import ProfileRequestError, select_profile
from ..catalog_spawner import CatalogSpawner
from .profiles import ClusterFacts, profile_list_entries


class CatalogKubeSpawner(CatalogSpawner, KubeSpawner):
    cluster = Instance(
        ClusterFacts, args=({},), config=True, help="the cluster's facts (kubernetes.wiring.cluster_facts)"
    )

    @default("profile_list")
    def _default_profile_list(self):
        return catalog_profile_list

    async def load_user_options(self):
        try:
            self.resolved = select_profile(self.catalog, self.user_groups, dict(self.user_options or {}))
        except ProfileRequestError as e:
            raise web.HTTPError(400, str(e)) from None
        await super().load_user_options()


def catalog_profile_list(spawner: CatalogKubeSpawner) -> list[dict]:
    """KubeSpawner's `profile_list` for this spawner's user: only their groups' profiles.

    A module-level function, so that configuration can name it explicitly: the
    Zero to JupyterHub chart sets `KubeSpawner.profile_list` from its values
    (an empty list by default), which would hide a `@default`.
    """
    catalog = spawner.catalog
    return profile_list_entries(
        catalog.allowed_for(spawner.user_groups), spawner.cluster, catalog.default.slug
    )
