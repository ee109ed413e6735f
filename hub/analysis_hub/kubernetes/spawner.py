"""KubeSpawner with its profile list drawn from the shared catalog, per user's groups.

Contract: `CatalogKubeSpawner.profile_list` is a callable that KubeSpawner
evaluates for the form and again in `load_user_options`; it returns only the
profiles the user's groups may use, translated by `profiles.py`. Before
KubeSpawner applies a request, `select_profile` checks it exactly as the other
backends do, so an unknown or hidden profile, a bad choice or an extra key
(an image, say) is refused with 400 and nothing is created.
"""

from __future__ import annotations

from kubespawner import KubeSpawner
from tornado import web
from traitlets import Dict, Unicode, default

from ..catalog_source import CatalogSource
from ..selection import ProfileRequestError, select_profile
from .profiles import ClusterFacts, profile_list_entries


class CatalogKubeSpawner(KubeSpawner):
    catalog_dir = Unicode(config=True, help="folder of profile YAML files (mounted from the chart)")
    images_dir = Unicode(config=True, help="folder of images/<name>/ definitions")
    image_references = Dict(config=True, help="catalog image name -> pullable reference")
    hadoop_configmap = Unicode("", config=True, help="ConfigMap with the Hadoop client configuration")

    @property
    def catalog(self):
        return CatalogSource.shared(self.catalog_dir, self.images_dir, self.log).current()

    @property
    def cluster(self) -> ClusterFacts:
        return ClusterFacts(
            images=dict(self.image_references), hadoop_configmap=self.hadoop_configmap or None
        )

    @default("profile_list")
    def _default_profile_list(self):
        def for_user(spawner):
            catalog = spawner.catalog
            groups = {g.name for g in spawner.user.groups}
            return profile_list_entries(catalog.allowed_for(groups), spawner.cluster, catalog.default.slug)

        return for_user

    async def load_user_options(self):
        groups = {g.name for g in self.user.groups}
        try:
            select_profile(self.catalog, groups, dict(self.user_options or {}))
        except ProfileRequestError as e:
            raise web.HTTPError(400, str(e)) from None
        await super().load_user_options()
