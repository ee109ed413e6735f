"""In-image smoke test for the hub image, run inside the container by tests/images.

Promises: the pinned JupyterHub components import at their locked versions,
the analysis_hub package loads its Kubernetes spawner and the bundled
catalog, and settings for the kubernetes backend apply. The pipelines
service, which the chart runs from this image, finds git and keeps a team's
versions with it as the image's user (a version committed, read back and
logged). Prints one JSON line.
"""

import json
import os
import subprocess
import tempfile
from importlib.metadata import version

from analysis_hub.backends.kubernetes.spawner import CatalogKubeSpawner
from analysis_hub.catalog import load_catalog
from analysis_hub.config import HostFacts, apply_settings
from analysis_hub.pipelines.store.repository import TeamRepository
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
git = subprocess.run(["git", "--version"], check=True, capture_output=True, text=True).stdout.strip()
with tempfile.TemporaryDirectory() as root:
    # What publishing a version does (pipelines/versions.py): init on first use, commit, tag.
    repository = TeamRepository(root, "data-team")
    notebook, metadata = '{"cells": []}\n', {"profile": "pyspark"}
    sha = repository.commit("demo", 1, {"notebook.ipynb": notebook}, metadata, "alice", "first")
    assert repository.read(sha, "demo") == (notebook, metadata)
    assert [entry["author"] for entry in repository.log("demo")] == ["alice"]
report = {"hub": "ok", "profiles": [p.slug for p in catalog.profiles], **versions}
print(json.dumps({**report, "git": git, "pipelines_repository": "committed"}))
