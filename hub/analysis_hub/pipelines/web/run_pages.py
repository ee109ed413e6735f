"""A run's pages, and the actions taken on a run from them.

Contract: `RUN_PAGES` are the routes (relative to the service prefix) of:
- `runs/<id>`: the run's page, for the team and for the approvers of a
  gate it reached. Its changing part is one template (`run_live.html`),
  also served alone at `runs/<id>/live`: the open page fetches it until the
  run finishes and puts it in place when its `data-state` (a digest of what
  it shows) changes, so the page left open shows what a reload shows.
  Each viewer sees only the actions they may take: cancel and repair to the
  team's members (and admins), a gate's decision to its approvers.
- `runs/<id>/steps/<step>`: a workflow step's output in the page's frame,
  with the way back to its run; `.../output.html` (and `runs/<id>/output.html`
  for a single notebook) is the notebook's own HTML that the frames show.
- actions: `runs/<id>/cancel`, `runs/<id>/repair` (the team's; 403
  otherwise), `runs/<id>/steps/<step>/approve|reject` (`comment`; the gate's
  approvers only); each answers with a redirect to the run's page.
"""

from __future__ import annotations

import hashlib
import json

from tornado import web

from ..access import NotFound
from .pages import Page

STEP = r"(?P<step>[a-z][a-z0-9_]*)"


class RunPage(Page):
    template = "run.html"

    @web.authenticated
    def get(self, run_id):
        run, folder = self.pipelines.runs.get(self.caller, int(run_id))
        has_output = (folder / "output.html").exists()
        shown = json.dumps([run, has_output], sort_keys=True, default=str)
        self.render_page(
            self.template,
            run=run,
            has_output=has_output,
            state=hashlib.sha256(shown.encode()).hexdigest()[:16],
            member=self.caller.member_of(run["team"]),
            approver=lambda step: step["approvers"] in self.caller.groups,
        )


class RunLive(RunPage):
    """The run page's changing part alone, for the open page to put in place."""

    template = "run_live.html"

    def set_default_headers(self):
        self.set_header("Cache-Control", "no-store")


class StepPage(Page):
    @web.authenticated
    def get(self, run_id, step):
        run, folder = self.pipelines.runs.get(self.caller, int(run_id), step)
        row = next(s for s in run["steps"] if s["step"] == step)
        self.render_page("step.html", run=run, step=row, has_output=(folder / "output.html").exists())


class RunOutputHtml(Page):
    @web.authenticated
    def get(self, run_id, step=None):
        _, folder = self.pipelines.runs.get(self.caller, int(run_id), step)
        path = folder / "output.html"
        if not path.exists():
            raise NotFound(f"run {run_id} has no output yet")
        # The notebook's own HTML, sandboxed by the run page's iframe; no scripts of ours run in it.
        self.set_header("Content-Security-Policy", "sandbox allow-same-origin")
        self.finish(path.read_bytes())


class Cancel(Page):
    @web.authenticated
    async def post(self, run_id):
        await self.pipelines.runs.cancel(self.caller, int(run_id))
        self.redirect(f"{self.settings['prefix']}runs/{int(run_id)}", status=303)


class Repair(Page):
    @web.authenticated
    async def post(self, run_id):
        run = await self.pipelines.runs.repair(self.caller, int(run_id))
        self.redirect(f"{self.settings['prefix']}runs/{run['id']}", status=303)


class Decide(Page):
    @web.authenticated
    def post(self, run_id, step, decision):
        comment = self.get_body_argument("comment", "")
        self.pipelines.runs.gates.decide(self.caller, int(run_id), step, decision == "approve", comment)
        self.redirect(f"{self.settings['prefix']}runs/{int(run_id)}", status=303)


RUN_PAGES = [
    (r"runs/(?P<run_id>\d+)", RunPage),
    (r"runs/(?P<run_id>\d+)/live", RunLive),
    (r"runs/(?P<run_id>\d+)/cancel", Cancel),
    (r"runs/(?P<run_id>\d+)/output.html", RunOutputHtml),
    (r"runs/(?P<run_id>\d+)/repair", Repair),
    (rf"runs/(?P<run_id>\d+)/steps/{STEP}", StepPage),
    (rf"runs/(?P<run_id>\d+)/steps/{STEP}/output.html", RunOutputHtml),
    (rf"runs/(?P<run_id>\d+)/steps/{STEP}/(?P<decision>approve|reject)", Decide),
]
