"""The vanilla baseline's spawner: JupyterHub's SimpleLocalProcessSpawner, pointed at an environment.

Contract: exactly `jupyterhub.spawner.SimpleLocalProcessSpawner` (a
LocalProcessSpawner that runs every server as the hub's own Unix user, in a
home made from `home_dir_template`), with two changes and no others:

- `start()` sets `cmd` to `<environment>/bin/jupyterhub-singleuser`, the
  environment named by the request's `profile` option in `environments`
  (profile -> environment folder), so the baseline runs the very same
  jupyterhub-singleuser and JupyterLab as analysis-hub's profile;
- `get_args()` adds `--allow-root` when the hub runs as root, which
  jupyter-server otherwise refuses (analysis-hub runs servers as
  `jupyter-<name>` there; a plain hub without Unix users can't).

Loaded by the vanilla hub process (the benchmark puts this folder on its
PYTHONPATH); it imports nothing from analysis_hub.
"""

from __future__ import annotations

import os

from jupyterhub.spawner import SimpleLocalProcessSpawner
from tornado import web
from traitlets import Dict, Unicode


class EnvironmentLocalProcessSpawner(SimpleLocalProcessSpawner):
    environments = Dict(Unicode(), config=True, help="profile name -> environment folder")
    default_profile = Unicode("", config=True, help="profile used when a request names none")

    async def start(self):
        profile = (self.user_options or {}).get("profile") or self.default_profile
        if profile not in self.environments:
            raise web.HTTPError(400, f"unknown profile {profile!r}")
        self.cmd = [os.path.join(self.environments[profile], "bin", "jupyterhub-singleuser")]
        return await super().start()

    def get_args(self):
        args = list(super().get_args())
        if os.geteuid() == 0 and "--allow-root" not in args:
            args.append("--allow-root")
        return args
