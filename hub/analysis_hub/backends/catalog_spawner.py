"""What the one-machine spawners (local and docker backends) share: profiles and the GPU pool.

Contract:
- `gpu_pool()` is this hub's pool of the machine's GPUs, detected once; a
  server allocates from it at start and releases at stop, so two servers
  never share a GPU by accident.
- `CatalogProfiles`, mixed in before a JupyterHub spawner class, adds the
  `catalog_dir` and `images_dir` settings and picks a profile from the
  shared catalog for the spawn form and `user_options`
  (`analysis_hub.selection`): a request the catalog does not allow for the
  user's groups, or a GPU profile on a machine without enough GPUs, is
  refused with HTTP 400 before anything starts. The chosen profile is
  `spawner.resolved`.

The kubernetes backend picks profiles through KubeSpawner's own
profile_list instead (kubernetes/spawner.py).
"""

from __future__ import annotations

from tornado import web
from traitlets import HasTraits, Unicode, default

from ..catalog import Catalog, ResolvedProfile
from ..catalog_source import CatalogSource
from ..forms import gpu_shortfall, render_profile_form
from ..runtime.gpus import GpuPool, detect_gpus
from ..selection import ProfileRequestError, options_from_form, select_profile

_gpu_pool: GpuPool | None = None


def gpu_pool() -> GpuPool:
    global _gpu_pool
    if _gpu_pool is None:
        _gpu_pool = GpuPool(detect_gpus())
    return _gpu_pool


class CatalogProfiles(HasTraits):
    catalog_dir = Unicode(config=True, help="folder of profile YAML files")
    images_dir = Unicode(config=True, help="folder of images/<name>/ definitions")

    resolved: ResolvedProfile | None = None

    @property
    def catalog(self) -> Catalog:
        return CatalogSource.shared(self.catalog_dir, self.images_dir, log=self.log).current()

    @property
    def user_groups(self) -> set[str]:
        return {group.name for group in self.user.groups}

    def resolve_default_profile(self) -> ResolvedProfile:
        """A start with no options at all: the catalog's default for this user."""
        if self.resolved is None:
            self.resolved = select_profile(self.catalog, self.user_groups, {})
        return self.resolved

    @default("options_form")
    def _default_options_form(self):
        def form(spawner):
            profiles = spawner.catalog.allowed_for(spawner.user_groups)
            return render_profile_form(profiles, gpu_pool().total)

        return form

    def options_from_form(self, formdata):
        return options_from_form(formdata)

    @default("apply_user_options")
    def _default_apply_user_options(self):
        def apply(spawner, user_options):
            try:
                resolved = select_profile(spawner.catalog, spawner.user_groups, user_options)
            except ProfileRequestError as e:
                raise web.HTTPError(400, str(e)) from None
            shortfall = gpu_shortfall(resolved.resources.gpus, gpu_pool().total)
            if shortfall:
                raise web.HTTPError(
                    400, f"Profile {resolved.slug!r} {shortfall}. Pick a CPU option or another profile."
                )
            spawner.resolved = resolved

        return apply
