"""A refused server request changes nothing, and is logged as the ordinary 400 it is.

JupyterHub records a request before our check (`apply_user_options`) sees it:
a named server's database row exists (created by the request itself, by
"Add New Server", or by merely opening its spawn form), and the requested
options are stored on it as the server's "future defaults". A refusal left
both behind: a stopped record that counts against JupyterHub's
`named_server_limit_per_user`, holding options that were refused.

Contract:
- `RequestRefused(message)` is the HTTP 400 every backend raises for a
  request the user must change (`catalog_spawner.apply_profile_request`).
  The form and the REST API show `message` as it is (JupyterHub reads
  `jupyterhub_message`), without "HTTP 400: error (...)" around it.
- `RecordBeforeRequest.of(orm_spawner, user_options)` is what a server's
  record held before a request: whether it ever ran, and its options.
  `restore(spawner)`, called after JupyterHub has stopped the refused start,
  puts that back: a named server's record that never ran and held no options
  is removed (it was only a name), any other gets its earlier options again.
- `quiet_refusals(log)` adds (once) a filter to the hub's logger: JupyterHub
  logs each refusal three or four times at error level, twice with a
  traceback, and tornado once more at warning for a REST request; those
  records are dropped, and the one warning line `apply_profile_request`
  writes (with `extra=KEPT_LINE`) stays.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field

from tornado import web


class RequestRefused(web.HTTPError):
    """HTTP 400 for a request the user must change; nothing has started."""

    def __init__(self, message: str):
        # Tornado %-formats log_message when the error is printed.
        super().__init__(400, message.replace("%", "%%"))
        self.jupyterhub_message = message
        _recent.append(message)


# The last refusals' messages: JupyterHub's own error lines about them quote the message.
_recent: deque[str] = deque(maxlen=64)


@dataclass(frozen=True)
class RecordBeforeRequest:
    ran: bool
    user_options: dict = field(default_factory=dict)

    @classmethod
    def of(cls, orm_spawner, user_options: dict | None) -> RecordBeforeRequest:
        # A start, a stop and a failed start all set last_activity; creating the record does not.
        ran = getattr(orm_spawner, "last_activity", None) is not None
        return cls(ran, dict(user_options or {}))

    def restore(self, spawner) -> None:
        """Undo what JupyterHub recorded for the refused request (the caller's session commits)."""
        orm_spawner = spawner.orm_spawner
        if spawner.name and not self.ran and not self.user_options:
            # Only a name: remove the row, as JupyterHub's DELETE ?remove=true does, but not
            # the backend's storage (`delete_forever`): a record that never ran made none, and
            # on Kubernetes a named server may share its user's volume.
            spawner.user.db.delete(orm_spawner)
            spawner.user.spawners.pop(spawner.name, None)
            return
        orm_spawner.user_options = dict(self.user_options)
        spawner.user_options = dict(self.user_options)


# `extra` of the one line kept per refusal (apply_profile_request's).
KEPT_LINE = {"analysis_hub_refusal": True}


class _RefusalFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or getattr(record, "analysis_hub_refusal", False):
            return True
        if record.exc_info and isinstance(record.exc_info[1], RequestRefused):
            return False
        message = record.getMessage()
        return not any(refused in message for refused in _recent)


_FILTER = _RefusalFilter()


def quiet_refusals(log: logging.Logger | logging.LoggerAdapter) -> None:
    # JupyterHub's User logs through tornado's application logger, and tornado logs a REST
    # error's message through its general one; both reach the hub's handlers by propagation,
    # past the hub logger's own filters.
    hub_logger = log.logger if isinstance(log, logging.LoggerAdapter) else log
    for logger in (
        hub_logger,
        logging.getLogger("tornado.application"),
        logging.getLogger("tornado.general"),
    ):
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
