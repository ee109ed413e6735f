"""Parse CPU and memory quantities the way Kubernetes writes them, and durations.

Pure functions. The catalog accepts the same spellings as a pod spec so that
one catalog serves every backend: memory as `4Gi`, `512Mi`, `2G` or plain
bytes; CPU as `2`, `0.5` or `500m`. Durations (idle timeouts) are `90s`,
`30m`, `4h` or whole seconds. Anything else raises `ValueError` with a
message that says what is allowed.
"""

from __future__ import annotations

import re

_MEMORY_SUFFIXES = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}
_MEMORY_RE = re.compile(r"^(\d+(?:\.\d+)?)(k|M|G|T|Ki|Mi|Gi|Ti)?$")
_CPU_RE = re.compile(r"^(\d+(?:\.\d+)?)(m)?$")
_DURATION_RE = re.compile(r"^(\d+)(s|m|h)?$")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}

MEMORY_HELP = "a memory quantity such as 512Mi, 4Gi, 2G or a number of bytes (no spaces)"
CPU_HELP = "a CPU quantity such as 2, 0.5 or 500m"
DURATION_HELP = "a duration such as 90s, 30m, 4h or a whole number of seconds"


def parse_memory(value: str | int) -> int:
    """Return the number of bytes in a memory quantity."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not {MEMORY_HELP}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{value!r} is negative; expected {MEMORY_HELP}")
        return value
    match = _MEMORY_RE.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not {MEMORY_HELP}")
    number, suffix = match.groups()
    return int(float(number) * _MEMORY_SUFFIXES[suffix or ""])


def parse_cpu(value: str | int | float) -> float:
    """Return the number of cores in a CPU quantity."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not {CPU_HELP}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"{value!r} is negative; expected {CPU_HELP}")
        return float(value)
    match = _CPU_RE.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not {CPU_HELP}")
    number, millis = match.groups()
    return float(number) / 1000 if millis else float(number)


def format_memory(num_bytes: int) -> str:
    """Render bytes for people: the largest binary unit that divides evenly-ish."""
    for suffix in ("Ti", "Gi", "Mi", "Ki"):
        unit = _MEMORY_SUFFIXES[suffix]
        if num_bytes >= unit:
            value = num_bytes / unit
            return f"{value:g} {suffix}B" if value == int(value) else f"{value:.1f} {suffix}B"
    return f"{num_bytes} B"


def format_cpu(cores: float) -> str:
    """Render a core count for people."""
    return f"{cores:g} CPU" if cores == 1 else f"{cores:g} CPUs"


def parse_duration(value: str | int) -> int:
    """Return the number of seconds in a duration (`90s`, `30m`, `4h`, or seconds)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{value!r} is not {DURATION_HELP}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{value!r} is negative; expected {DURATION_HELP}")
        return value
    match = _DURATION_RE.match(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not {DURATION_HELP}")
    number, unit = match.groups()
    return int(number) * _DURATION_UNITS[unit or ""]


def format_duration(seconds: int) -> str:
    """Render seconds for people and for the form: `1h 30m`, `45m`, `90s`."""
    if seconds % 60:
        return f"{seconds}s"
    hours, minutes = divmod(seconds // 60, 60)
    if not hours:
        return f"{minutes}m"
    return f"{hours}h" + (f" {minutes}m" if minutes else "")
