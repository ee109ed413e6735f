"""Log filters for what a notebook server or kernel logs that nobody can act on.

Installed into every environment and image with two configs:
`jupyter_server_config.json` (analysis_hub_server.json: tornado's log of the
server) and `ipython_kernel_config.json` (the kernel's own log). `Unactionable`
drops exactly these messages; every other record passes, warnings and errors
included:
- ipykernel's "Kernel is running over TCP without encryption", from every
  kernel of a notebook server and of a pipeline run: the kernel listens on
  the loopback of the user's own server, container or pod, and its messages
  are signed with a key only that server holds.
- tornado's "The websocket_ping_timeout (90000) cannot be longer than the
  websocket_ping_interval (30000)", at every server start. jupyter_server's
  websockets keep their own pings, in milliseconds (every 30 s, closed after
  90 s without an answer), in the same handler properties that tornado 6.5
  reads as seconds and checks; tornado's own pings (every 30000 s) never
  matter. No setting satisfies both: with a timeout no longer than the
  interval, jupyter_server closes every kernel connection at its first ping
  (tried: "WebSocket ping timeout after 30010 ms"). jupyter_server issue #1612.
"""

from __future__ import annotations

import logging

UNACTIONABLE = (
    "Kernel is running over TCP without encryption",
    "The websocket_ping_timeout (",
)


class Unactionable(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(UNACTIONABLE)
