"""The pipelines service's web pages, and the page forms' actions.

Contract: `PAGES` are the routes (relative to the service prefix) of:
- pages: the list of the caller's teams' pipelines (`""`), a compact one
  for the hub's home page to frame (`summary`), a pipeline (`p/<team>/<name>`),
  a run (`runs/<id>`, and its output as HTML), and a team's audit trail
  (`audit/<team>`, filtered by `action`, `pipeline`, `actor`);
- actions, POSTed by the pages' forms (each a team member's, refused with
  403 otherwise before anything changes, each audited by the service):
  `p/<team>/<name>/run` (typed parameters `param.<name>`), `.../pause`,
  `.../resume`, `.../settings` (schedule, timezone, parameters as JSON,
  timeout, retries, webhook), `.../rollback` (`to`), `runs/<id>/cancel`,
  `runs/<id>/repair`, `runs/<id>/steps/<step>/approve|reject` (`comment`;
  its approvers only). A workflow's run page shows each step's state.
  They answer with a redirect to the page that shows the result.
Every form carries the XSRF token (`handlers.py` says how HubOAuth checks
it); the templates ask for a confirmation before the destructive ones.
Times and durations are said by `humane.py`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from tornado import web

from ..access import NotFound, require_member
from ..publishing.specs import SpecError
from ..store.models import AUDIT_ACTIONS
from . import humane
from .handlers import Handler, P

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape(["html"])
)


class Page(Handler):
    def render_page(self, template: str, **values) -> None:
        now = datetime.now(UTC)
        self.finish(
            TEMPLATES.get_template(template).render(
                prefix=self.settings["prefix"],
                user=self.caller,
                xsrf=self.xsrf_token.decode(),
                ago=lambda iso: humane.ago(iso, now),
                exact=humane.exact,
                duration=lambda run: humane.say_duration(humane.run_seconds(run, now)),
                **values,
            )
        )

    def write_error(self, status_code, **kwargs):
        """A refusal as a page a person reads (the API's handlers answer JSON)."""
        exc = kwargs.get("exc_info", (None, None))[1]
        message = str(exc) if exc and not isinstance(exc, web.HTTPError) else self._reason
        if isinstance(exc, web.HTTPError) and exc.log_message:
            message = exc.log_message
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(
            TEMPLATES.get_template("error.html").render(
                prefix=self.settings["prefix"], status=status_code, message=message
            )
        )

    def back_to(self, team: str, name: str) -> None:
        self.redirect(f"{self.settings['prefix']}p/{quote(team)}/{quote(name)}", status=303)


class IndexPage(Page):
    @web.authenticated
    def get(self):
        self.render_page("index.html", pipelines=self.pipelines.list_pipelines(self.caller))


class SummaryPage(Page):
    """The caller's teams' pipelines and last runs, small, for the hub's home page's frame."""

    @web.authenticated
    def get(self):
        self.render_page("summary.html", pipelines=self.pipelines.list_pipelines(self.caller))


class PipelinePage(Page):
    @web.authenticated
    def get(self, team, name):
        p = self.pipelines.describe(self.caller, team, name)
        active = next((v for v in p["versions"] if v["number"] == p["active_version"]), None)
        declared = {**(active["parameters"] if active else {})}
        values = {k: p["parameters"].get(k, d["default"]) for k, d in declared.items()}
        self.render_page(
            "pipeline.html",
            p=p,
            declared=declared,
            values=values,
            chart=humane.duration_chart(p["runs"], datetime.now(UTC)),
            parameters_json=json.dumps(p["parameters"]),
        )


class RunPage(Page):
    @web.authenticated
    def get(self, run_id):
        run, folder = self.pipelines.runs.get(self.caller, int(run_id))
        self.render_page(
            "run.html",
            run=run,
            has_output=(folder / "output.html").exists(),
            approver=lambda step: step["approvers"] in self.caller.groups,
        )


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


class AuditPage(Page):
    @web.authenticated
    def get(self, team):
        require_member(self.caller, team)
        chosen = {k: self.get_argument(k, "") for k in ("action", "pipeline", "actor")}
        events = self.pipelines.audit(self.caller, team)
        shown = [
            e
            for e in reversed(events)
            if (not chosen["action"] or e["action"] == chosen["action"])
            and (not chosen["actor"] or e["actor"] == chosen["actor"])
            and (not chosen["pipeline"] or e["pipeline"] == chosen["pipeline"])
        ]
        self.render_page(
            "audit.html",
            team=team,
            events=shown,
            chosen=chosen,
            actions=AUDIT_ACTIONS,
            pipelines=sorted({e["pipeline"] for e in events if e["pipeline"]}),
            actors=sorted({e["actor"] for e in events}),
        )


# -- the forms' actions ------------------------------------------------------


class RunNow(Page):
    @web.authenticated
    async def post(self, team, name):
        p = self.pipelines.describe(self.caller, team, name)
        active = [v["parameters"] for v in p["versions"] if v["number"] == p["active_version"]]
        declared = active[0] if active else {}  # not deployed: run_now says so
        given = humane.form_parameters(declared, self.request.body_arguments)
        run = await self.pipelines.runs.run_now(self.caller, team, name, given)
        self.redirect(f"{self.settings['prefix']}runs/{run['id']}", status=303)


class Pause(Page):
    paused = True

    @web.authenticated
    async def post(self, team, name):
        await self.pipelines.deploy(self.caller, team, name, {"paused": self.paused})
        self.back_to(team, name)


class Resume(Pause):
    paused = False


class Settings(Page):
    @web.authenticated
    async def post(self, team, name):
        arg = self.get_body_argument
        try:
            parameters = json.loads(arg("parameters", "{}") or "{}")
        except ValueError:
            raise SpecError('parameters: not JSON (write an object like {"n": 3})') from None
        request = {
            "schedule": arg("schedule", "").strip() or None,
            "timezone": arg("timezone", "").strip() or "UTC",
            "parameters": parameters,
            "notify_url": arg("notify_url", "").strip() or None,
        }
        for key in ("timeout", "retries"):
            value = arg(key, "").strip()
            if not value.isdigit():
                raise SpecError(f"{key}: a whole number is required, got {value!r}")
            request[key] = int(value)
        if request["schedule"] is None:
            del request["schedule"], request["timezone"]
        await self.pipelines.deploy(self.caller, team, name, request)
        self.back_to(team, name)


class Rollback(Page):
    @web.authenticated
    async def post(self, team, name):
        to = self.get_body_argument("to", "")
        if not to.isdigit():
            raise SpecError(f"to: the version number to roll back to is required, got {to!r}")
        await self.pipelines.rollback(self.caller, team, name, int(to))
        self.back_to(team, name)


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


PAGES = [
    (r"", IndexPage),
    (r"summary", SummaryPage),
    (rf"p/{P}", PipelinePage),
    (rf"p/{P}/run", RunNow),
    (rf"p/{P}/pause", Pause),
    (rf"p/{P}/resume", Resume),
    (rf"p/{P}/settings", Settings),
    (rf"p/{P}/rollback", Rollback),
    (r"runs/(?P<run_id>\d+)", RunPage),
    (r"runs/(?P<run_id>\d+)/cancel", Cancel),
    (r"runs/(?P<run_id>\d+)/output.html", RunOutputHtml),
    (r"runs/(?P<run_id>\d+)/repair", Repair),
    (r"runs/(?P<run_id>\d+)/steps/(?P<step>[a-z][a-z0-9_]*)/output.html", RunOutputHtml),
    (r"runs/(?P<run_id>\d+)/steps/(?P<step>[a-z][a-z0-9_]*)/(?P<decision>approve|reject)", Decide),
    (r"audit/(?P<team>[^/]+)", AuditPage),
]
