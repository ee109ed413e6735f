"""A cron schedule in words, and its next fire times: what a person checks before deploying.

Contract:
- `describe(expression, timezone)` says a five-field cron expression
  (minute hour day month weekday) in English, with its time zone:
  "weekdays at 06:00 Europe/Paris", "every 15 minutes UTC", "on the 1st of
  every month at 00:00 UTC". Shapes it has no words for are said field by
  field, never wrongly.
- `next_times(expression, timezone, after, count)` are the next `count` fire
  times, computed by APScheduler's `CronTrigger` (the scheduler's own
  library, so the preview and the runs agree).
- `cron_trigger(expression, timezone)` is the one way to turn a standard
  crontab line into an APScheduler trigger: APScheduler 3's own
  `from_crontab` counts weekdays from Monday = 0, so "1-5" would run Tuesday
  to Saturday; here weekday numbers mean what cron means (0 and 7 Sunday).
- A bad expression or time zone raises `SpecError` naming the field, as
  `specs.check_deployment` does when deploying.
Pure apart from reading the clock's `after` passed in.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

from .errors import SpecError

DAYS = ("Sundays", "Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Fridays", "Saturdays")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")  # fmt: skip
_DAY_NAMES = {name[:3].lower(): i for i, name in enumerate(DAYS)}
_MONTH_NAMES = {name[:3].lower(): i + 1 for i, name in enumerate(MONTHS)}


def cron_trigger(expression: str, timezone) -> CronTrigger:
    """APScheduler's trigger for a standard crontab line (weekday 0 or 7 = Sunday); ValueError if bad."""
    fields = (expression or "").split()
    if len(fields) != 5:
        raise ValueError(f"wrong number of fields; got {len(fields)}, expected 5")
    minute, hour, day, month, weekday = fields
    return CronTrigger(
        minute=minute, hour=hour, day=day, month=month, day_of_week=_weekday_names(weekday), timezone=timezone
    )


def _weekday_names(field: str) -> str:
    """A cron weekday field as APScheduler day names ("1-5" -> "mon,tue,wed,thu,fri")."""
    if field == "*":
        return field
    days: set[int] = set()
    for part in field.lower().split(","):
        span, _, step = part.partition("/")
        if span == "*":
            low, high = 0, 6
        else:
            first, dash, last = span.partition("-")
            low = _weekday_number(first)
            high = _weekday_number(last) if dash else (6 if step else low)
        if low is None or high is None or not (step or "1").isdigit() or int(step or "1") < 1:
            return field  # APScheduler refuses it with its own message
        high = 7 if high == 0 and low > 0 else high
        days |= {d % 7 for d in range(low, high + 1, int(step or "1"))}
    return ",".join(_APS_DAYS[d] for d in sorted(days))


_APS_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _weekday_number(token: str) -> int | None:
    if token.isdigit():
        return int(token) if int(token) <= 7 else None
    return _DAY_NAMES.get(token[:3]) if len(token) == 3 else None


def trigger(expression: str, timezone: str) -> CronTrigger:
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        message = f"timezone: {timezone!r} is not a time zone name such as Europe/Paris or UTC"
        raise SpecError(message) from None
    try:
        return cron_trigger(expression, zone)
    except (ValueError, TypeError) as e:
        raise SpecError(
            f"schedule: {expression!r} is not a cron expression (minute hour day month weekday): {e}"
        ) from None


def next_times(expression: str, timezone: str, after: datetime, count: int = 3) -> list[datetime]:
    cron = trigger(expression, timezone)
    times: list[datetime] = []
    previous = None
    now = after
    for _ in range(count):
        fire = cron.get_next_fire_time(previous, now)
        if fire is None:
            break
        times.append(fire)
        previous, now = fire, fire
    return times


def describe(expression: str, timezone: str) -> str:
    trigger(expression, timezone)  # refuse what the scheduler would refuse
    minute, hour, day, month, weekday = expression.split()
    return f"{_when(minute, hour, day, month, weekday)} {timezone}"


def _when(minute: str, hour: str, day: str, month: str, weekday: str) -> str:
    days = _days(day, month, weekday)
    if _is_number(minute) and _is_number(hour):
        return f"{days} at {int(hour):02d}:{int(minute):02d}"
    if _is_number(minute) and "," in hour and all(_is_number(h) for h in hour.split(",")):
        times = ", ".join(f"{int(h):02d}:{int(minute):02d}" for h in hour.split(","))
        return f"{days} at {times}"
    if hour == "*" and minute == "*":
        return f"every minute, {days}"
    if hour == "*" and minute.startswith("*/") and _is_number(minute[2:]):
        return f"every {int(minute[2:])} minutes, {days}"
    if hour == "*" and _is_number(minute):
        return f"every hour at minute {int(minute)}, {days}"
    if hour.startswith("*/") and _is_number(hour[2:]) and _is_number(minute):
        return f"every {int(hour[2:])} hours at minute {int(minute)}, {days}"
    return f"at minute {minute} of hour {hour}, {days}"


def _days(day: str, month: str, weekday: str) -> str:
    months = "" if month == "*" else f" in {_list(month, _month_word)}"
    if day == "*" and weekday == "*":
        return f"every day{months}"
    if day == "*":
        weekdays = {"1-5": "weekdays", "mon-fri": "weekdays", "0,6": "weekends", "6,0": "weekends",
                    "sat,sun": "weekends", "sun,sat": "weekends"}.get(weekday.lower())  # fmt: skip
        return (weekdays or f"on {_list(weekday, _day_word)}") + months
    monthly = f"of {_list(month, _month_word)}" if month != "*" else "of every month"
    said = f"on the {_list(day, _ordinal)} {monthly}"
    return said if weekday == "*" else f"{said} and on {_list(weekday, _day_word)}"


def _list(field: str, word) -> str:
    parts = []
    for part in field.split(","):
        low, dash, high = part.partition("-")
        parts.append(f"{word(low)} to {word(high)}" if dash else word(part))
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _day_word(value: str) -> str:
    index = _DAY_NAMES.get(value.lower()[:3]) if not value.isdigit() else int(value) % 7
    return DAYS[index] if index is not None and "/" not in value else value


def _month_word(value: str) -> str:
    number = int(value) if value.isdigit() else _MONTH_NAMES.get(value.lower()[:3])
    return MONTHS[number - 1] if number and 1 <= number <= 12 else value


def _ordinal(value: str) -> str:
    if not value.isdigit():
        return "last day" if value == "last" else value
    n = int(value)
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _is_number(value: str) -> bool:
    return value.isdigit()
