"""How the pages say times and durations: pure helpers, no I/O.

Contract: `ago(iso, now)` says how long ago (or how soon) an ISO 8601 UTC
time is ("just now", "3 min ago", "in 2 h"); `exact(iso, zone)` is the exact
time with its time zone (UTC unless a zone such as a schedule's is given),
for a hover title or a deadline; `run_seconds(run)` is a run view's duration (to
`now` while it runs, None before it starts); `say_duration(seconds)` is a
duration in words ("45 s", "3 min 12 s", "1 h 5 min"); `duration_chart`
turns the last runs into the bars of a small SVG chart (oldest on the
left, heights relative to the longest); `form_parameters` reads the run
form's `param.<name>` fields as strings for `coerce_parameters` to type;
`changes(before, after)` says what an audit event changed, one line per
field ("timeout: 1 h → 2 min"), its values said as `say` says them (a time
with its zone, None as "none").
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

CHART_RUNS = 30


def parse(iso: str) -> datetime:
    """An ISO 8601 time; one without an offset is UTC (the database's times)."""
    value = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def exact(iso: str | None, zone: str | None = None) -> str:
    if not iso:
        return ""
    try:
        tz = ZoneInfo(zone) if zone else UTC
    except (ZoneInfoNotFoundError, ValueError):
        tz = UTC
    return parse(iso).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z")


def ago(iso: str | None, now: datetime) -> str:
    if not iso:
        return ""
    seconds = (now - parse(iso)).total_seconds()
    future, seconds = seconds < 0, abs(seconds)
    if seconds < 45:
        return "just now" if not future else "in a moment"
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            count = round(seconds / size) if unit != "day" else int(seconds // size)
            words = f"{count} {unit}" + ("s" if unit == "day" and count != 1 else "")
            return f"in {words}" if future else f"{words} ago"
    return f"in {round(seconds / 60)} min" if future else f"{round(seconds / 60)} min ago"


def run_seconds(run: dict, now: datetime) -> float | None:
    if not run.get("started_at"):
        return None
    end = parse(run["finished_at"]) if run.get("finished_at") else now
    return max(0.0, (end - parse(run["started_at"])).total_seconds())


def say_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, s = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {s} s" if s else f"{minutes} min"
    hours, m = divmod(minutes, 60)
    return f"{hours} h {m} min" if m else f"{hours} h"


def duration_chart(runs: list[dict], now: datetime, width: int = 300, height: int = 60) -> list[dict]:
    """Bars for the last CHART_RUNS runs (`runs` newest first, as the API lists them): x, y, w, h in
    the SVG's pixels, the run's id and status (its colour), and a title; a run with no duration
    (skipped, never started) gets a stub so it still shows where it happened."""
    last = list(reversed(runs[:CHART_RUNS]))
    if not last:
        return []
    durations = [run_seconds(r, now) for r in last]
    longest = max((d for d in durations if d), default=0) or 1
    slot = width / CHART_RUNS
    bars = []
    for index, (run, seconds) in enumerate(zip(last, durations, strict=True)):
        h = max(2.0, (seconds or 0) / longest * (height - 2))
        bars.append(
            {
                "id": run["id"],
                "status": run["status"],
                "x": round(index * slot + 1, 1),
                "y": round(height - h, 1),
                "w": round(slot - 2, 1),
                "h": round(h, 1),
                "title": f"#{run['id']} {run['status']}" + (f", {say_duration(seconds)}" if seconds else ""),
            }
        )
    return bars


def form_parameters(declared: dict, form: dict[str, list[bytes]]) -> dict[str, str]:
    """The run form's values of the declared parameters (others are ignored), as strings."""
    prefix = "param."
    return {
        key[len(prefix) :]: values[-1].decode()
        for key, values in form.items()
        if key.startswith(prefix) and key[len(prefix) :] in declared
    }


# A time as the database and older audit events wrote it: ISO 8601, or Python's str() of a datetime.
TIME = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?$")


SECONDS_FIELDS = ("timeout",)  # audited fields that count seconds
ABOUT = ("run", "step")  # what an event is about, said even where it did not change


def say(value, field: str = "") -> str:
    """An audit value for a person: times with their zone, seconds as a duration, None as "none",
    objects as compact JSON."""
    if field in SECONDS_FIELDS and isinstance(value, int | float) and not isinstance(value, bool):
        return say_duration(value)
    if value is None:
        return "none"
    if isinstance(value, str):
        return exact(value) if TIME.match(value) else value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(", ", ": "))
    return str(value)


def changes(before: dict | None, after: dict | None) -> list[str]:
    """What an audit event changed: which run and step it was about (when it names them), then the
    fields that differ ("field: old → new"; one side's only: "field: new", "field: was old"); an
    event with only one side (a run started, a gate asked) says that side's fields."""
    if not (before and after):
        return [f"{k}: {say(v, k)}" for k, v in (after or before or {}).items()]
    about = [k for k in ABOUT if k in before and before[k] == after.get(k)]
    lines = [f"{k}: {say(after[k], k)}" for k in about]
    for k in [*before, *(k for k in after if k not in before)]:
        if k in about or before.get(k) == after.get(k):
            continue
        if k not in after:
            lines.append(f"{k}: was {say(before[k], k)}")
        elif k not in before:
            lines.append(f"{k}: {say(after[k], k)}")
        else:
            lines.append(f"{k}: {say(before[k], k)} → {say(after[k], k)}")
    return lines if len(lines) > len(about) else [*lines, "no change"]
