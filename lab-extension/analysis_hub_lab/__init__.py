"""analysis-hub's JupyterLab extension, server side: the lab's way to the pipelines service.

Contract (routes under the server's base URL, for its logged-in user only,
XSRF-checked by jupyter-server like every API call of the lab):
- `GET|POST|PUT /analysis-hub/pipelines/api/<path>` forwards to the service's
  REST API (`$ANALYSIS_HUB_PIPELINES_URL` + `api/<path>`) with the server's own
  `$JUPYTERHUB_API_TOKEN`, whose scopes the hub limits to the server, its
  activity and the pipelines service (`config.SERVER_TOKEN_SCOPES`). The
  service decides, by the token's user and groups, what that user may do.
- `POST /analysis-hub/publish` `{path, team, name, profile, message,
  deploy: {trigger, schedule, timezone, parameters, notify_url} | null}` reads
  the notebook at `path` from this server's contents (saved first by the lab),
  publishes it as the pipeline's next version, then deploys that version
  when `deploy` is given (`{}` too); a field `deploy` leaves out keeps the
  deployment's value. Answers `{version, pipeline}`; a refusal keeps the
  service's status and message.
- `GET /analysis-hub/config`: the server's profile (`$ANALYSIS_HUB_PROFILE`)
  and whether the service is reachable from here at all.
The labextension (the dialog) lives in `labextension/`, built from ../src.
"""

from __future__ import annotations

from .handlers import setup_handlers


def _jupyter_labextension_paths():
    return [{"src": "labextension", "dest": "analysis-hub-lab"}]


def _jupyter_server_extension_points():
    return [{"module": "analysis_hub_lab"}]


def _load_jupyter_server_extension(server_app):
    setup_handlers(server_app.web_app)
    server_app.log.info("analysis_hub_lab: publishing to pipelines from JupyterLab is on")
