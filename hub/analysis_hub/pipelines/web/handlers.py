"""The base of the service's request handlers: who is calling, JSON in and out, refusals as statuses.

Contract: `Handler` authenticates with JupyterHub (HubOAuth: the browser's
cookie, or a hub API token in the Authorization header). JupyterHub's
HubOAuth accepts the cookie on a request that changes something (and on a
script's fetch) only with the XSRF token (`_xsrf` form field or
`X-XSRFToken` header) that `xsrf_token` gives the pages; without it the
request is not authenticated, so `web.authenticated` answers 403. A token
in the Authorization header can't be sent by another site's page, so such
calls need no XSRF token. The service's refusals (`access.py`'s
exceptions, bad specs) become JSON `{"status", "message"}` with their
status code.
"""

from __future__ import annotations

import json

from jupyterhub.services.auth import HubOAuthenticated
from tornado import web

from ...selection import ProfileRequestError
from ..access import Caller, Conflict, Forbidden, NotFound, TooLarge
from ..publishing.notebooks import NotebookError
from ..publishing.specs import SpecError
from ..service import Pipelines

P = r"(?P<team>[^/]+)/(?P<name>[^/]+)"
ERRORS = {
    SpecError: 400,
    NotebookError: 400,
    ProfileRequestError: 400,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    TooLarge: 413,
}


class Handler(HubOAuthenticated, web.RequestHandler):
    @property
    def pipelines(self) -> Pipelines:
        return self.settings["pipelines"]

    @property
    def caller(self) -> Caller:
        user = self.current_user
        return Caller(user["name"], frozenset(user.get("groups") or []), bool(user.get("admin")))

    def body(self) -> dict:
        if len(self.request.body) > self.settings["max_bytes"]:
            raise TooLarge(
                f"the request is {len(self.request.body) / 2**20:.1f} MiB;"
                f" the limit is {self.settings['max_bytes'] // 2**20} MiB"
            )
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError:
            raise SpecError("the request body is not JSON") from None
        if not isinstance(data, dict):
            raise SpecError("the request body must be a JSON object")
        return data

    def send(self, data, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data, default=str))

    def write_error(self, status_code, **kwargs):
        exc = kwargs.get("exc_info", (None, None))[1]
        message = str(exc) if exc and not isinstance(exc, web.HTTPError) else self._reason
        if isinstance(exc, web.HTTPError) and exc.log_message:
            message = exc.log_message
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"status": status_code, "message": message}))

    def log_exception(self, typ, value, tb):
        if typ in ERRORS:
            return  # an expected refusal, already answered with its message
        super().log_exception(typ, value, tb)

    def _handle_request_exception(self, e):
        status = next((code for kind, code in ERRORS.items() if isinstance(e, kind)), None)
        if status and not self._finished:
            self.set_status(status)
            self.write_error(status, exc_info=(type(e), e, None))
            return
        super()._handle_request_exception(e)
