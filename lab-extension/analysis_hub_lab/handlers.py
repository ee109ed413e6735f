"""The server extension's handlers (see the package's contract)."""

from __future__ import annotations

import json
import os
from urllib.parse import quote

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import ensure_async, url_path_join
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

URL_ENV = "ANALYSIS_HUB_PIPELINES_URL"
PROFILE_ENV = "ANALYSIS_HUB_PROFILE"
TOKEN_ENV = "JUPYTERHUB_API_TOKEN"
# What the dialog may change of a deployment; every field left out keeps its value (the service merges).
DEPLOY_FIELDS = ("trigger", "schedule", "timezone", "parameters", "notify_url")
TIMEOUT_S = 120  # a first publish may build the profile's environment for a check


class ServiceError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


async def call_service(method: str, path: str, body: dict | bytes | None = None, query: str = "") -> tuple:
    """(status, content type, body bytes) of the service's answer to `method api/<path>`."""
    base = os.environ.get(URL_ENV, "")
    token = os.environ.get(TOKEN_ENV, "")
    if not base or not token:
        missing = URL_ENV if not base else TOKEN_ENV
        raise ServiceError(
            503,
            f"this server can't reach the pipelines service (${missing} is not set): the hub's"
            " pipelines are off, or this backend gives servers no route to them",
        )
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    request = HTTPRequest(
        url_path_join(base, "api", path) + (f"?{query}" if query else ""),
        method=method,
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
        body=data if method in ("POST", "PUT") else None,
        request_timeout=TIMEOUT_S,
        follow_redirects=False,
    )
    try:
        response = await AsyncHTTPClient().fetch(request)
    except HTTPClientError as e:
        if e.response is None:
            raise ServiceError(502, f"the pipelines service at {base} does not answer: {e}") from None
        response = e.response
    except OSError as e:
        raise ServiceError(502, f"the pipelines service at {base} does not answer: {e}") from None
    return response.code, response.headers.get("Content-Type", "application/json"), response.body


def service_json(status: int, body: bytes) -> dict:
    """The service's JSON answer, or ServiceError carrying its refusal."""
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        data = {"message": body.decode(errors="replace")[:500]}
    if status >= 400:
        raise ServiceError(status, data.get("message") or f"the pipelines service answered {status}")
    return data


class Base(APIHandler):
    def refuse(self, error: ServiceError) -> None:
        self.set_status(error.status)
        self.finish(json.dumps({"status": error.status, "message": error.message}))


class Forward(Base):
    async def _forward(self, path: str) -> None:
        body = self.request.body if self.request.method in ("POST", "PUT") else None
        try:
            status, content_type, answer = await call_service(
                self.request.method, path, body, self.request.query
            )
        except ServiceError as e:
            return self.refuse(e)
        self.set_status(status)
        self.set_header("Content-Type", content_type)
        self.finish(answer)

    @web.authenticated
    async def get(self, path):
        await self._forward(path)

    @web.authenticated
    async def post(self, path):
        await self._forward(path)

    @web.authenticated
    async def put(self, path):
        await self._forward(path)


class Publish(Base):
    @web.authenticated
    async def post(self):
        request = self.get_json_body() or {}
        try:
            self.finish(json.dumps(await self._publish(request)))
        except ServiceError as e:
            self.refuse(e)

    async def _publish(self, request: dict) -> dict:
        missing = [k for k in ("path", "team", "name") if not request.get(k)]
        if missing:
            raise ServiceError(400, f"{', '.join(missing)}: required")
        try:
            model = await ensure_async(
                self.contents_manager.get(request["path"], content=True, type="notebook")
            )
        except web.HTTPError as e:
            raise ServiceError(e.status_code, f"{request['path']}: {e.log_message}") from None
        pipeline = f"pipelines/{quote(request['team'], safe='')}/{quote(request['name'], safe='')}"
        publish = {"notebook": model["content"], "message": request.get("message") or ""}
        if request.get("profile"):
            publish["profile"] = request["profile"]
        version = service_json(*_drop_type(await call_service("POST", f"{pipeline}/versions", publish)))
        summary = None
        deploy = request.get("deploy")
        if deploy is not None:  # {}: deploy the new version, the deployment otherwise unchanged
            fields = {k: v for k, v in deploy.items() if k in DEPLOY_FIELDS}
            fields["version"] = version["number"]
            summary = service_json(*_drop_type(await call_service("PUT", f"{pipeline}/deployment", fields)))
        return {"version": version, "pipeline": summary}


class Config(Base):
    @web.authenticated
    def get(self):
        self.finish(
            json.dumps(
                {
                    "profile": os.environ.get(PROFILE_ENV, ""),
                    "service": bool(os.environ.get(URL_ENV) and os.environ.get(TOKEN_ENV)),
                }
            )
        )


def _drop_type(answer: tuple) -> tuple:
    status, _, body = answer
    return status, body


def setup_handlers(web_app) -> None:
    base = url_path_join(web_app.settings["base_url"], "analysis-hub")
    web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base, "pipelines", r"api/(.*)"), Forward),
            (url_path_join(base, "publish"), Publish),
            (url_path_join(base, "config"), Config),
        ],
    )
