"""Pure parsing of JupyterHub's request log: who asked what, when, how long it took.

Contract: functions take the log's text and return plain data; no files, no
clocks. JupyterHub logs each finished request at INFO as

    [I 2026-11-22 09:10:19.818 JupyterHub log:192] 200 GET /hub/api/ (idle-culler@127.0.0.1) 20.11ms

`parse_requests` turns those lines into `LoggedRequest`s (the timestamp is
the hub's local time when the response was written, as a Unix epoch);
`culler_sweeps` groups the idle culler's requests into sweeps: each sweep
begins with the culler's `GET /hub/api/` (its version check) and holds every
culler request up to the next one. `spawn_phases` reads where one user's
spawns spent their time from the spawner's own INFO lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

_REQUEST = re.compile(
    r"^\[(?P<level>[A-Z]) (?P<stamp>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) JupyterHub log:\d+\] "
    r"(?P<status>\d{3}) (?P<method>[A-Z]+) (?P<path>\S+) \((?P<who>[^)]*)\) (?P<ms>[\d.]+)ms"
)
_LINE = re.compile(
    r"^\[[A-Z] (?P<stamp>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) JupyterHub (?P<where>\S+)\] (?P<text>.*)"
)
CULLER = "idle-culler"


@dataclass(frozen=True)
class LoggedRequest:
    finished: float  # epoch seconds
    status: int
    method: str
    path: str
    who: str  # "name@ip", "@ip" when anonymous
    duration_s: float

    @property
    def started(self) -> float:
        return self.finished - self.duration_s

    @property
    def client(self) -> str:
        return self.who.split("@", 1)[0]


@dataclass
class CullerSweep:
    requests: list[LoggedRequest] = field(default_factory=list)

    @property
    def started(self) -> float:
        return min(r.started for r in self.requests)

    @property
    def finished(self) -> float:
        return max(r.finished for r in self.requests)

    @property
    def duration_s(self) -> float:
        return self.finished - self.started

    @property
    def deletes(self) -> list[LoggedRequest]:
        return [r for r in self.requests if r.method == "DELETE"]

    @property
    def user_pages(self) -> int:
        return sum(1 for r in self.requests if r.method == "GET" and r.path.startswith("/hub/api/users"))


def _epoch(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()


def parse_requests(log_text: str) -> list[LoggedRequest]:
    requests = []
    for line in log_text.splitlines():
        match = _REQUEST.match(line)
        if match:
            finished = _epoch(match["stamp"])
            requests.append(
                LoggedRequest(
                    finished=finished,
                    status=int(match["status"]),
                    method=match["method"],
                    path=match["path"],
                    who=match["who"],
                    duration_s=float(match["ms"]) / 1000,
                )
            )
    return requests


def culler_sweeps(requests: list[LoggedRequest]) -> list[CullerSweep]:
    sweeps: list[CullerSweep] = []
    for request in sorted((r for r in requests if r.client == CULLER), key=lambda r: r.started):
        if request.method == "GET" and request.path == "/hub/api/":
            sweeps.append(CullerSweep())
        if sweeps:
            sweeps[-1].requests.append(request)
    return sweeps


def stopped_server_owner(request: LoggedRequest) -> str | None:
    """The user whose default server this request stopped, if it is such a DELETE."""
    match = re.fullmatch(r"/hub/api/users/([^/]+)/server", request.path)
    if request.method == "DELETE" and match and request.status in (202, 204):
        return match[1]
    return None


def spawn_phases(log_text: str, user: str) -> list[dict]:
    """Each spawn of `user`, in order: `prepare_s` and `start_s`.

    `start_s` is JupyterHub's own "User X took N seconds to start" (the
    spawner's start() until the server answers). `prepare_s` is the part
    before the server process is launched, from analysis-hub's "X: Starting
    profile" to JupyterHub's "Spawning <command>": the environment check,
    the Unix user, the home and the cgroup. It is None for a spawner that
    logs no such first line (the vanilla hub's launch follows at once).
    """
    spawns, prepared_at = [], None
    prepare_s = None
    for line in log_text.splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        text = match["text"]
        if text.startswith(f"{user}: Starting profile"):
            prepared_at = _epoch(match["stamp"])
        elif text.startswith("Spawning ") and match["where"].startswith("spawner:") and prepared_at:
            prepare_s, prepared_at = _epoch(match["stamp"]) - prepared_at, None
        elif took := re.fullmatch(rf"User {re.escape(user)} took ([\d.]+) seconds to start", text):
            spawns.append({"prepare_s": prepare_s, "start_s": float(took[1])})
            prepare_s = None
    return spawns
