"""In-image smoke test for the hub image, run inside the container by tests/images.

Promises: the pinned JupyterHub components import at their locked versions,
the analysis_hub package loads its Kubernetes spawner and the bundled
catalog, and settings for the kubernetes backend apply. Prints one JSON line.
"""

import json
import os
from importlib.metadata import version

from analysis_hub.catalog import load_catalog
from analysis_hub.config import HostFacts, apply_settings
from analysis_hub.backends.kubernetes.spawner import CatalogKubeSpawner
from analysis_hub.settings import load_settings
from traitlets.config import Config

assert os.getuid() == 1000
versions = {
    name: version(name)
    for name in ("jupyterhub", "jupyterhub-kubespawner", "oauthenticator", "jupyterhub-idle-culler")
}
assert versions["jupyterhub"] == "6.1.1", versions
catalog = load_catalog(os.environ["ANALYSIS_HUB_CATALOG"], os.environ["ANALYSIS_HUB_IMAGES_DIR"])
settings = load_settings(None, {"ANALYSIS_HUB_BACKEND": "kubernetes"})
c = apply_settings(settings, Config(), HostFacts(is_root=False, cgroups_writable=False))
assert c.JupyterHub.spawner_class.endswith(CatalogKubeSpawner.__name__)
print(json.dumps({"hub": "ok", "profiles": [p.slug for p in catalog.profiles], **versions}))
