"""The pipelines service over HTTP: REST API (with its OpenAPI document) and web pages.

Contract: `make_app(pipelines, prefix, max_bytes)` returns the tornado
application mounted at the hub's service prefix (`/services/pipelines/`).
Users authenticate with JupyterHub: the browser by the hub's OAuth, the CLI
with a hub API token in the Authorization header. Only the HTTP trigger
endpoint takes a pipeline's own trigger token instead, `metrics` a token
with the `read:metrics` scope (run_metrics.py), and `health` (the
readiness probe: 200 when the database answers, 503 when not) takes none and
says nothing else. Errors are JSON `{"status", "message"}` with
400/403/404/409/413.
"""

from __future__ import annotations

import json
import logging
import re
from urllib.parse import quote

from jupyterhub.services.auth import HubOAuthCallbackHandler
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from ..access import NotFound
from ..engine.run_metrics import MetricsHandler
from ..publishing.specs import CONCURRENCY, SpecError
from ..service import Pipelines
from ..triggers import AFTER_ON, TRIGGERS
from .handlers import Handler, P
from .lab_api import LAB_ROUTES
from .pages import PAGES
from .run_pages import RUN_PAGES
from .version_diff import DIFF_ROUTES

# One table drives the routes' documentation: (method, path, summary, request body).
# A body field's type is a JSON type, or a tuple of the only strings allowed.
API = [
    ("get", "api/pipelines", "Pipelines of your teams", None),
    ("get", "api/pipelines/{team}/{name}", "A pipeline: deploy state, versions, recent runs", None),
    ("delete", "api/pipelines/{team}/{name}", "Delete a pipeline (history and git versions are kept)", None),
    (
        "post",
        "api/pipelines/{team}/{name}/versions",
        "Publish the next version: a notebook, or a workflow (spec: pipeline.yaml, notebooks)",
        {
            "notebook": "object",
            "spec": "string",
            "notebooks": "object",
            "profile": "string",
            "choices": "object",
            "message": "string",
            "parent": "integer",
        },
    ),
    ("get", "api/pipelines/{team}/{name}/versions/{number}/notebook", "A version's notebook", None),
    ("get", "api/pipelines/{team}/{name}/diff?a={a}&b={b}", "Diff of two versions (nbdime)", None),
    (
        "get",
        "api/pipelines/{team}/{name}/deployment",
        "The deploy state alone, with the next and the last run (cheap enough to poll)",
        None,
    ),
    (
        "put",
        "api/pipelines/{team}/{name}/deployment",
        "Deploy: active version, trigger, schedule, parameters, concurrency, timeout, retries, pause",
        {
            "version": "integer",
            "trigger": TRIGGERS,
            "schedule": "string",
            "timezone": "string",
            "parameters": "object",
            "concurrency": CONCURRENCY,
            "timeout": "integer",
            "retries": "integer",
            "paused": "boolean",
            "notify_url": "string",
            "notify_on_success": "boolean",
            "new_trigger_token": "boolean",
            "after_pipeline": "string",
            "after_on": AFTER_ON,
            "subscribers": "array",
        },
    ),
    (
        "post",
        "api/pipelines/{team}/{name}/rollback",
        "Point the pipeline at an earlier version",
        {"to": "integer"},
    ),
    ("get", "api/pipelines/{team}/{name}/runs", "Run history", None),
    ("post", "api/pipelines/{team}/{name}/runs", "Run now", {"parameters": "object"}),
    (
        "post",
        "api/pipelines/{team}/{name}/trigger",
        "Run by HTTP trigger (Authorization: Bearer <trigger token>)",
        {"parameters": "object"},
    ),
    ("get", "api/runs/{id}", "A run", None),
    ("get", "api/runs/{id}/output", "A run's output notebook", None),
    ("get", "api/runs/{id}/log", "A run's log", None),
    ("post", "api/runs/{id}/cancel", "Cancel a queued or running run (409 once finished)", None),
    ("post", "api/runs/{id}/repair", "Re-run a failed run from its failed steps (a new run)", None),
    ("get", "api/runs/{id}/steps/{step}/output", "A workflow step's output notebook", None),
    ("get", "api/runs/{id}/steps/{step}/log", "A workflow step's log", None),
    (
        "post",
        "api/runs/{id}/steps/{step}/approve",
        "Approve a waiting gate (its approvers only)",
        {"comment": "string"},
    ),
    (
        "post",
        "api/runs/{id}/steps/{step}/reject",
        "Reject a waiting gate (its approvers only)",
        {"comment": "string"},
    ),
    ("get", "api/audit?team={team}&pipeline={name}", "The audit trail", None),
]


def openapi(prefix: str) -> dict:
    paths: dict = {}
    for method, path, summary, body in API:
        path, _, query = path.partition("?")
        operation: dict = {"summary": summary, "responses": {"200": {"description": "JSON"}}}
        params = [
            {"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in _names(path)
        ]
        params += [{"name": n, "in": "query", "schema": {"type": "string"}} for n in _names(query)]
        if params:
            operation["parameters"] = params
        if body:
            properties = {
                k: {"type": "string", "enum": list(t)} if isinstance(t, tuple) else {"type": t}
                for k, t in body.items()
            }
            schema = {"type": "object", "properties": properties, "additionalProperties": False}
            operation["requestBody"] = {"content": {"application/json": {"schema": schema}}}
        paths.setdefault(prefix + path, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "analysis-hub pipelines", "version": "1"},
        "components": {
            "securitySchemes": {"hubToken": {"type": "apiKey", "in": "header", "name": "Authorization"}}
        },
        "security": [{"hubToken": []}],
        "paths": paths,
    }


def _names(template: str) -> list[str]:
    return re.findall(r"\{(\w+)\}", template)


class ApiHandler(Handler):
    def get_login_url(self):
        raise web.HTTPError(403, "log in to the hub, or send a hub API token")


class PipelineList(ApiHandler):
    @web.authenticated
    def get(self):
        self.send(self.pipelines.list_pipelines(self.caller))


class PipelineItem(ApiHandler):
    @web.authenticated
    def get(self, team, name):
        self.send(self.pipelines.describe(self.caller, team, name))

    @web.authenticated
    def delete(self, team, name):
        self.pipelines.deployments.delete(self.caller, team, name)
        self.send({"deleted": f"{team}/{name}"})


class Versions(ApiHandler):
    @web.authenticated
    async def post(self, team, name):
        body = self.body()
        if "spec" in body:  # a workflow: pipeline.yaml and its notebooks
            unknown = sorted(set(body) - {"spec", "notebooks", "message", "parent"})
            if unknown:
                raise SpecError(
                    f"{', '.join(unknown)}: unknown field (a workflow: spec, notebooks, message, parent)"
                )
            version = await self.pipelines.versions.publish_workflow(
                self.caller,
                team,
                name,
                body["spec"],
                body.get("notebooks") or {},
                str(body.get("message") or "")[:2000],
                body.get("parent"),
            )
            return self.send(version, 201)
        unknown = sorted(set(body) - {"notebook", "server_path", "profile", "choices", "message", "parent"})
        if unknown:
            raise SpecError(f"{', '.join(unknown)}: unknown field")
        if ("notebook" in body) == ("server_path" in body):
            raise SpecError("either notebook (an upload) or server_path is required")
        notebook = body.get("notebook") or await self.notebook_from_server(str(body["server_path"]))
        version = await self.pipelines.versions.publish(
            self.caller,
            team,
            name,
            notebook,
            body.get("profile"),  # none: the profile the notebook's kernel names
            body.get("choices") or {},
            str(body.get("message") or "")[:2000],
            body.get("parent"),
        )
        self.send(version, 201)

    async def notebook_from_server(self, path: str) -> str:
        """Read the notebook from the caller's own running server, with the caller's own token."""
        token = self.request.headers.get("Authorization", "")
        if not token.startswith(("token ", "Bearer ")):
            raise SpecError("server_path needs a hub API token in the Authorization header (the CLI's)")
        server = f"{self.pipelines.public_url}/user/{quote(self.caller.name)}"
        url = f"{server}/api/contents/{quote(path.lstrip('/'))}"
        try:
            response = await AsyncHTTPClient().fetch(
                url + "?content=1&type=notebook", headers={"Authorization": token}, request_timeout=60
            )
        except HTTPClientError as e:
            code = e.code if e.code != 599 else "no answer"
            raise SpecError(
                f"server_path: could not read {path!r} from your server ({code}); is it running?"
            ) from None
        return json.dumps(json.loads(response.body)["content"])


class VersionNotebook(ApiHandler):
    @web.authenticated
    def get(self, team, name, number):
        self.set_header("Content-Type", "application/x-ipynb+json")
        self.finish(self.pipelines.versions.notebook(self.caller, team, name, int(number)))


class Diff(ApiHandler):
    @web.authenticated
    def get(self, team, name):
        a, b = (int(self.get_argument(k)) for k in ("a", "b"))
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(self.pipelines.versions.diff(self.caller, team, name, a, b))


class Deployment(ApiHandler):
    @web.authenticated
    def get(self, team, name):
        self.send(self.pipelines.summary(self.caller, team, name))

    @web.authenticated
    async def put(self, team, name):
        self.send(await self.pipelines.deploy(self.caller, team, name, self.body()))


class Rollback(ApiHandler):
    @web.authenticated
    async def post(self, team, name):
        to = self.body().get("to")
        if not isinstance(to, int):
            raise SpecError("to: the version number to roll back to is required")
        self.send(await self.pipelines.rollback(self.caller, team, name, to))


class Runs(ApiHandler):
    @web.authenticated
    def get(self, team, name):
        self.send(self.pipelines.runs.history(self.caller, team, name))

    @web.authenticated
    async def post(self, team, name):
        run = await self.pipelines.runs.run_now(self.caller, team, name, self.body().get("parameters"))
        self.send(run, 201)


class Trigger(Handler):
    # Authenticated by the pipeline's own trigger token, not by the hub.
    async def post(self, team, name):
        token = self.request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        run = await self.pipelines.runs.run_by_http_trigger(team, name, token, self.body().get("parameters"))
        self.send(run, 201)


class RunItem(ApiHandler):
    @web.authenticated
    def get(self, run_id, what=None, step=None):
        run, folder = self.pipelines.runs.get(self.caller, int(run_id), step)
        if what is None:
            return self.send(run)
        path = folder / ("output.ipynb" if what == "output" else "log.txt")
        if not path.exists():
            raise NotFound(f"run {run_id} has no {what} (yet)" + (f" for step {step}" if step else ""))
        self.set_header("Content-Type", "application/x-ipynb+json" if what == "output" else "text/plain")
        if what == "output":  # a browser saves it under a name that says whose it is
            name = f"{run['team']}-{run['pipeline']}-run{run_id}" + (f"-{step}" if step else "")
            file = re.sub(r"[^\w.-]", "_", name) + ".ipynb"
            self.set_header("Content-Disposition", f'attachment; filename="{file}"')
        self.finish(path.read_bytes())


class RunCancel(ApiHandler):
    @web.authenticated
    async def post(self, run_id):
        self.send(await self.pipelines.runs.cancel(self.caller, int(run_id)))


class RunRepair(ApiHandler):
    @web.authenticated
    async def post(self, run_id):
        self.send(await self.pipelines.runs.repair(self.caller, int(run_id)), 201)


class StepDecision(ApiHandler):
    @web.authenticated
    def post(self, run_id, step, decision):
        comment = str(self.body().get("comment") or "")
        self.send(
            self.pipelines.runs.gates.decide(self.caller, int(run_id), step, decision == "approve", comment)
        )


class Audit(ApiHandler):
    @web.authenticated
    def get(self):
        self.send(
            self.pipelines.audit(
                self.caller, self.get_argument("team", None), self.get_argument("pipeline", None)
            )
        )


class OpenApi(web.RequestHandler):
    def get(self):
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(openapi(self.settings["prefix"]), indent=1))


class Health(web.RequestHandler):
    """Readiness: the service can serve only while its database answers."""

    def get(self):
        try:
            with self.settings["pipelines"].sessions() as db:
                db.execute(text("SELECT 1"))
        except SQLAlchemyError as e:
            # The reason goes to the log only: the probe's answer is unauthenticated.
            logging.getLogger(__name__).warning("health: the database does not answer: %s", e)
            self.set_status(503)
            self.finish({"status": "unavailable"})
            return
        self.finish({"status": "ok"})


def make_app(pipelines: Pipelines, prefix: str, max_bytes: int) -> web.Application:
    routes = [
        (r"api/openapi.json", OpenApi),
        (r"health", Health),
        (r"metrics", MetricsHandler),
        (r"api/pipelines", PipelineList),
        (rf"api/pipelines/{P}", PipelineItem),
        (rf"api/pipelines/{P}/versions", Versions),
        (rf"api/pipelines/{P}/versions/(?P<number>\d+)/notebook", VersionNotebook),
        (rf"api/pipelines/{P}/diff", Diff),
        (rf"api/pipelines/{P}/deployment", Deployment),
        (rf"api/pipelines/{P}/rollback", Rollback),
        (rf"api/pipelines/{P}/runs", Runs),
        (rf"api/pipelines/{P}/trigger", Trigger),
        (r"api/runs/(?P<run_id>\d+)", RunItem),
        (r"api/runs/(?P<run_id>\d+)/(?P<what>output|log)", RunItem),
        (r"api/runs/(?P<run_id>\d+)/cancel", RunCancel),
        (r"api/runs/(?P<run_id>\d+)/repair", RunRepair),
        (r"api/runs/(?P<run_id>\d+)/steps/(?P<step>[a-z][a-z0-9_]*)/(?P<what>output|log)", RunItem),
        (
            r"api/runs/(?P<run_id>\d+)/steps/(?P<step>[a-z][a-z0-9_]*)/(?P<decision>approve|reject)",
            StepDecision,
        ),
        (r"api/audit", Audit),
        *LAB_ROUTES,
        (r"oauth_callback", HubOAuthCallbackHandler),
        *PAGES,
        *RUN_PAGES,
        *DIFF_ROUTES,
    ]
    return web.Application(
        [(prefix + pattern, *rest) for pattern, *rest in routes],
        pipelines=pipelines,
        prefix=prefix,
        max_bytes=max_bytes,
    )
