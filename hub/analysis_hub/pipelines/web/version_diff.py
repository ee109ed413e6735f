"""Two versions of a pipeline side by side, rendered by nbdime's own web diff.

Contract: `DIFF_ROUTES` (relative to the service prefix) are
- `p/<team>/<name>/diff?a=<n>&b=<m>`: a page (ours) that loads nbdime's
  built web app (`nbdime.js`, from the installed nbdime package, served
  unchanged at `nbdime/`) with versions a and b as its base and remote;
- `p/<team>/<name>/api/diff`: where that app POSTs `{"base", "remote"}`
  (version numbers); the answer is what nbdime's app expects: the base
  notebook and nbdime's diff of the two.
Only team members get either (403 otherwise). The app sends the service's
XSRF token from its cookie (`X-XSRFToken`), which HubOAuth wants with the
cookie on a script's POST (`handlers.py`).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import nbformat
from tornado import web

from ..publishing.specs import SpecError
from .handlers import P
from .pages import Page

# Found without importing nbdime, which is slow to import (only a diff needs it).
NBDIME_STATIC = Path(importlib.util.find_spec("nbdime").origin).parent / "webapp" / "static"


def version_number(value, key: str) -> int:
    if not str(value).isdigit():
        raise SpecError(f"{key}: a version number is required, got {value!r}")
    return int(value)


class DiffPage(Page):
    @web.authenticated
    def get(self, team, name):
        a, b = (version_number(self.get_argument(k, ""), k) for k in ("a", "b"))
        for number in (a, b):  # 403/404 before the page, not inside nbdime's app
            self.pipelines.versions.notebook(self.caller, team, name, number)
        config = {
            "base": str(a),
            "remote": str(b),
            "baseUrl": f"{self.settings['prefix']}p/{team}/{name}/",
            "hideUnchanged": True,
        }
        self.render_page("diff.html", team=team, name=name, a=a, b=b, config=json.dumps(config))


class DiffApi(Page):
    @web.authenticated
    def post(self, team, name):
        from nbdime import diff_notebooks

        body = self.body()
        a, b = (version_number(body.get(k), k) for k in ("base", "remote"))
        left, right = (
            nbformat.reads(self.pipelines.versions.notebook(self.caller, team, name, n), as_version=4)
            for n in (a, b)
        )
        self.send({"base": left, "diff": diff_notebooks(left, right)})

    def write_error(self, status_code, **kwargs):
        # nbdime's app reads a JSON error, like the REST API's.
        super(Page, self).write_error(status_code, **kwargs)


DIFF_ROUTES = [
    (rf"p/{P}/diff", DiffPage),
    (rf"p/{P}/api/diff", DiffApi),
    (r"nbdime/(.*)", web.StaticFileHandler, {"path": str(NBDIME_STATIC)}),
]
