"""The pipelines service's web pages, and the page forms' actions.

Contract: `PAGES` are the routes (relative to the service prefix) of:
- pages: the list of the caller's teams' pipelines with the gates waiting
  for the caller's decision (`""`), a compact one for the hub's home page to
  frame (`summary`), a pipeline (`p/<team>/<name>`: its deployment, its
  workflow's steps, runs and versions), and a team's audit trail
  (`audit/<team>`, filtered by `action`, `pipeline`, `actor`, each event
  said as what it changed); a run's pages are `run_pages.py`'s;
- actions, POSTed by the pages' forms (each a team member's, refused with
  403 otherwise before anything changes, each audited by the service):
  `p/<team>/<name>/run` (typed parameters `param.<name>`), `.../pause`,
  `.../resume`, `.../settings` (schedule, timezone, parameters as JSON,
  timeout, retries, webhook), `.../rollback` (`to`), `.../deploy` (`version`,
  `trigger` manual or cron, `schedule`, `timezone`: the first deployment of a
  pipeline published without one). They answer with a redirect to the page
  that shows the result; a refused settings form is shown again with the
  reason and what was typed (400).
A refusal is a page with the hub's navigation (`write_error`).
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

from ..access import require_member
from ..engine.steps import fed_by_upstream
from ..publishing.specs import SpecError
from ..publishing.workflow_spec import steps_from_stored
from ..store.models import AUDIT_ACTIONS
from . import humane
from .handlers import Handler, P

SETTINGS_FIELDS = ("schedule", "timezone", "timeout", "retries", "parameters", "notify_url")

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape(["html"])
)


class Page(Handler):
    def render_page(self, template: str, **values) -> None:
        now = datetime.now(UTC)
        values.setdefault("user", self.caller)
        self.finish(
            TEMPLATES.get_template(template).render(
                prefix=self.settings["prefix"],
                xsrf=self.xsrf_token.decode(),
                ago=lambda iso: humane.ago(iso, now),
                exact=humane.exact,
                duration=lambda run: humane.say_duration(humane.run_seconds(run, now)),
                say_duration=humane.say_duration,
                changes=humane.changes,
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
        self.render_page("error.html", user=self._caller_if_known(), status=status_code, message=message)

    def _caller_if_known(self):
        """The caller for the navigation bar, or None when the refusal is that nobody is logged in."""
        try:
            return self.caller if self.current_user else None
        except Exception:  # a refusal page must render whatever failed before it
            return None

    def back_to(self, team: str, name: str) -> None:
        self.redirect(f"{self.settings['prefix']}p/{quote(team)}/{quote(name)}", status=303)


class IndexPage(Page):
    """The caller's teams' pipelines, and the gates (of any team's runs) waiting for the caller."""

    template = "index.html"

    @web.authenticated
    def get(self):
        self.render_page(
            self.template,
            pipelines=self.pipelines.list_pipelines(self.caller),
            decisions=self.pipelines.runs.gates.waiting_for(self.caller),
        )


class SummaryPage(IndexPage):
    """The same, small, for the hub's home page's frame."""

    template = "summary.html"


class PipelinePage(Page):
    @web.authenticated
    def get(self, team, name):
        self.show(team, name)

    def show(self, team: str, name: str, settings_error: str = "", typed: dict | None = None) -> None:
        """The pipeline's page; `typed`: a refused settings form's fields, shown again as typed."""
        p = self.pipelines.describe(self.caller, team, name)
        active = next((v for v in p["versions"] if v["number"] == p["active_version"]), None)
        declared = {**(active["parameters"] if active else {})}
        values = {k: p["parameters"].get(k, d["default"]) for k, d in declared.items()}
        saved = {
            "schedule": p.get("schedule") or "",
            "timezone": p.get("timezone") or "UTC",
            "timeout": p.get("timeout"),
            "retries": p.get("retries"),
            "parameters": json.dumps(p["parameters"]),
            "notify_url": p.get("notify_url") or "",
        }
        shown = active or (p["versions"][-1] if p["versions"] else None)  # whose steps are listed
        workflow = steps_from_stored(active["steps"]) if active and active.get("steps") else []
        self.render_page(
            "pipeline.html",
            p=p,
            declared=declared,
            values=values,
            chart=humane.duration_chart(p["runs"], datetime.now(UTC)),
            form={**saved, **(typed or {})},
            settings_error=settings_error,
            steps_of=shown if shown and shown.get("steps") else None,
            fed=fed_by_upstream(workflow),
        )


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


class Settings(PipelinePage):
    @web.authenticated
    async def post(self, team, name):
        try:
            await self.save(team, name)
        except SpecError as e:  # said on the form, with what was typed
            self.set_status(400)
            typed = {k: self.get_body_argument(k, "") for k in SETTINGS_FIELDS}
            self.show(team, name, settings_error=str(e), typed=typed)
            return
        self.back_to(team, name)

    async def save(self, team: str, name: str) -> None:
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


class Deploy(Page):
    """A pipeline published without a deployment (the CLI's publish without --deploy) gets its first
    one here: a rollback can't, nothing is active to roll back from. The HTTP trigger is the
    CLI's, which shows its token once."""

    @web.authenticated
    async def post(self, team, name):
        arg = self.get_body_argument
        version = arg("version", "")
        if not version.isdigit():
            raise SpecError(f"version: the version number to deploy is required, got {version!r}")
        request = {"version": int(version), "trigger": arg("trigger", "manual")}
        if request["trigger"] == "cron":
            request["schedule"] = arg("schedule", "").strip()
            request["timezone"] = arg("timezone", "").strip() or "UTC"
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


PAGES = [
    (r"", IndexPage),
    (r"summary", SummaryPage),
    (rf"p/{P}", PipelinePage),
    (rf"p/{P}/run", RunNow),
    (rf"p/{P}/pause", Pause),
    (rf"p/{P}/resume", Resume),
    (rf"p/{P}/settings", Settings),
    (rf"p/{P}/rollback", Rollback),
    (rf"p/{P}/deploy", Deploy),
    (r"audit/(?P<team>[^/]+)", AuditPage),
]
