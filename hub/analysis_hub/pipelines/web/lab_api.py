"""What JupyterLab's "Publish as pipeline" dialog asks the service before publishing.

Contract: `LAB_ROUTES` (relative to the service prefix), each for a logged-in
hub user (the lab extension's server side calls them with its server's own
hub token, whose scopes the hub limits to this service):
- `POST api/lab/context` with `{"notebook": <nbformat JSON>}` (optional):
  the caller's teams (their hub groups) with the profiles each team may use,
  each with `unavailable`: why a run of its default choices can't get its GPUs
  here, as the spawn form words it (`forms.gpu_shortfall`; '' when it can);
  the caller's teams' pipelines with their active version and, when deployed,
  the deployment a new version keeps unless the dialog changes it (`DEPLOYMENT_KEPT`);
  and the notebook's parameters read exactly as publishing reads them
  (`notebooks.notebook_parameters`), or the reason they can't be read.
- `GET api/lab/schedule?cron=<expr>&timezone=<zone>`: the schedule in words
  and its next three fire times (`cron_words`), or 400 naming the bad field.
Nothing here changes anything; publishing is the versions API.
"""

from __future__ import annotations

from datetime import UTC, datetime

from tornado import web

from ...catalog import resolve
from ...forms import gpu_shortfall
from ..publishing.cron_words import describe, next_times
from ..publishing.notebooks import NotebookError, notebook_parameters, read_notebook
from .handlers import Handler

# What "Publish new version…" shows and keeps of a deployment (the rest is kept without being shown).
DEPLOYMENT_KEPT = ("trigger", "schedule", "timezone", "parameters", "notify_url")
DEPLOYMENT_KEPT += ("after_pipeline", "after_on")


class LabHandler(Handler):
    def get_login_url(self):
        raise web.HTTPError(403, "log in to the hub, or send a hub API token")


class LabContext(LabHandler):
    @web.authenticated
    def post(self):
        body = self.body()
        caller = self.caller
        catalog = self.pipelines.versions.catalog.current()
        gpus = self.pipelines.versions.gpus_available
        teams = sorted(caller.groups)
        parameters, problem = None, None
        if body.get("notebook") is not None:
            try:
                found = notebook_parameters(read_notebook(body["notebook"]))
                parameters = {name: p.to_json() for name, p in found.items()}
            except NotebookError as e:
                problem = str(e)
        self.send(
            {
                "user": caller.name,
                "teams": [
                    {
                        "name": team,
                        "profiles": [
                            {
                                "slug": p.slug,
                                "display_name": p.display_name,
                                "unavailable": gpu_shortfall(resolve(p, {}).resources.gpus, gpus),
                            }
                            for p in catalog.allowed_for({team})
                        ],
                    }
                    for team in teams
                ],
                "pipelines": [
                    {
                        "team": p["team"],
                        "name": p["name"],
                        "active_version": p.get("active_version"),
                        "latest_version": p.get("latest_version"),
                        "deployment": (
                            {key: p[key] for key in DEPLOYMENT_KEPT} if p.get("active_version") else None
                        ),
                    }
                    for p in self.pipelines.list_pipelines(caller)
                ],
                "parameters": parameters,
                "parameters_problem": problem,
            }
        )


class SchedulePreview(LabHandler):
    @web.authenticated
    def get(self):
        cron = self.get_argument("cron", "")
        timezone = self.get_argument("timezone", "UTC") or "UTC"
        times = next_times(cron, timezone, datetime.now(UTC))
        self.send({"description": describe(cron, timezone), "next": [t.isoformat() for t in times]})


LAB_ROUTES = [
    (r"api/lab/context", LabContext),
    (r"api/lab/schedule", SchedulePreview),
]
