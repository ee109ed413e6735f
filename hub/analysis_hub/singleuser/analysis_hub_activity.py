"""Jupyter server extension: report only real activity to the hub.

Loaded into every user server: the local backend copies this file into each
environment's site-packages and `analysis_hub_activity.json` into its
`etc/jupyter/jupyter_server_config.d/`; the images do the same. jupyter-server counts every
authenticated API request as activity, so an open JupyterLab tab that polls
`/api/kernels`, `/api/sessions` and `/api/contents` keeps a server "active"
forever, while a kernel busy for an hour with no client looks idle. Here
the server's `last_activity()` counts instead:

- kernel execution (jupyter-server's own kernel activity tracking, which
  ignores kernel_info and comm_info chatter), and *now* while any kernel is busy;
- terminal input and output;
- API requests that change something (POST, PUT, PATCH, DELETE: saving a
  file, starting a kernel, opening a notebook), never reads, and never
  JupyterLab's own layout saves (`/lab/api/workspaces`), which an untouched
  tab sends every 10 seconds;
- any other extension's `*_last_activity` setting.

This module must import nothing beyond jupyter-server's own dependencies: it
runs inside the users' environments, not the hub's.
"""

from datetime import UTC, datetime

_WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
_SETTING = "analysis_hub_write_last_activity"
_IGNORED = {"api_last_activity"}  # counts reads too: the reason this extension exists
_NOT_WORK = ("/lab/api/workspaces",)  # layout autosaves, not the user's work


def _jupyter_server_extension_points():
    return [{"module": "analysis_hub_activity"}]


def _load_jupyter_server_extension(serverapp):
    web_app = serverapp.web_app
    settings = web_app.settings
    # Wrap the application's method, not settings["log_function"]: the jupyterhub
    # extension loads after this one and replaces that setting.
    log_request = web_app.log_request

    def log_and_track(handler):
        request = handler.request
        if (
            request.method in _WRITE_METHODS
            and "/api/" in request.path
            and not any(part in request.path for part in _NOT_WORK)
            and handler.get_status() < 400
            and getattr(handler, "_jupyter_current_user", None)
        ):
            settings[_SETTING] = datetime.now(UTC)
        log_request(handler)

    def last_activity():
        now = datetime.now(UTC)
        kernel_manager = settings["kernel_manager"]
        if any(k.get("execution_state") == "busy" for k in kernel_manager.list_kernels()):
            return now
        sources = [settings["started"], kernel_manager.last_kernel_activity]
        sources.extend(
            value
            for key, value in settings.items()
            if key.endswith("_last_activity") and key not in _IGNORED and value
        )
        sources.extend(settings.get("last_activity_times", {}).values())
        return max(sources)

    web_app.log_request = log_and_track
    web_app.last_activity = last_activity
    serverapp.log.info("analysis-hub activity policy: API reads no longer count as activity")
