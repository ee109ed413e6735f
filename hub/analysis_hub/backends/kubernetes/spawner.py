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
from traitlets import Bool, Dict, Unicode, default

from ...catalog_source import CatalogSource
from ...selection import ProfileRequestError, select_profile
from .profiles import ClusterFacts, profile_list_entries


class CatalogKubeSpawner(KubeSpawner):
    catalog_dir = Unicode(config=True, help="folder of profile YAML files (mounted from the chart)")
    images_dir = Unicode(config=True, help="folder of images/<name>/ definitions")
    image_references = Dict(config=True, help="catalog image name -> pullable reference")
    hadoop_configmap = Unicode("", config=True, help="ConfigMap with the Hadoop client configuration")
    krb5_conf = Bool(False, config=True, help="the Hadoop ConfigMap holds krb5.conf for /etc/krb5.conf")
    spark_service_account = Unicode(
        "", config=True, help="service account of pyspark pods that start Spark executors; empty: none"
    )

    @property
    def catalog(self):
        return CatalogSource.shared(self.catalog_dir, self.images_dir, self.log).current()

    @property
    def cluster(self) -> ClusterFacts:
        return ClusterFacts(
            images=dict(self.image_references),
            hadoop_configmap=self.hadoop_configmap or None,
            krb5_conf=self.krb5_conf,
            spark_service_account=self.spark_service_account or None,
        )

    @default("profile_list")
    def _default_profile_list(self):
        return catalog_profile_list

    async def load_user_options(self):
        groups = {g.name for g in self.user.groups}
        try:
            select_profile(self.catalog, groups, dict(self.user_options or {}))
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
    groups = {g.name for g in spawner.user.groups}
    return profile_list_entries(catalog.allowed_for(groups), spawner.cluster, catalog.default.slug)
