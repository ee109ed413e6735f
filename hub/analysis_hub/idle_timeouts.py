"""Idle timeouts an analyst chooses within the bounds a profile declares.

Contract (pure):
- `IdleTimeout` is the catalog's `idle_timeout: {min, max, default}` section
  (durations such as `10m`, `4h`, or whole seconds), validated in order;
  without `default`, the site's `culler.timeout` is the default.
- `choose_idle_timeout(slug, bounds, requested)` returns the seconds of
  idleness a server may have before the culler stops it: the request within
  the bounds, or the profile's default; None for the site's `culler.timeout`
  (no request and no default, or no bounds at all). It raises `ValueError`
  naming the range.
- `timeout_choices(bounds)` lists the values the spawn form offers.
- `site_default_text(site_timeout)` is how the forms and the home page name
  the site's default: "10m (the site's default)"; 0: the culler is off,
  "never (the site's default)"; None: not known here, "the site's default".

The chosen seconds travel in the server's `user_options` (`IDLE_TIMEOUT_KEY`),
which the hub's REST API shows to the culler (`culling.py`).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from .quantities import format_duration, parse_duration

IDLE_TIMEOUT_KEY = "idle_timeout"
Duration = Annotated[str | int, Field(description="whole seconds, or a duration such as 90s, 30m, 4h")]
# What the form offers between a profile's bounds (plus the bounds and the default themselves).
_FORM_STEPS = [m * 60 for m in (5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 360, 480, 720, 1440)]


class IdleTimeout(BaseModel):
    """The idle timeouts an analyst may choose for a server of this profile, and the default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min: Duration
    max: Duration
    default: Duration | None = Field(None, description="none: the site's culler.timeout")

    @field_validator("min", "max", "default")
    @classmethod
    def _valid_duration(cls, value):
        if value is not None and parse_duration(value) <= 0:
            raise ValueError(f"{value!r} must be longer than 0 seconds")
        return value

    @field_validator("default")
    @classmethod
    def _default_within(cls, value, info: ValidationInfo):
        # Checked here, not in `_ordered`, so the error names the key: idle_timeout.default.
        low, high = info.data.get("min"), info.data.get("max")
        if value is None or low is None or high is None:
            return value  # a bad min or max is reported on its own
        low_s, high_s = parse_duration(low), parse_duration(high)
        if low_s <= high_s and not low_s <= parse_duration(value) <= high_s:
            raise ValueError(f"{value!r} is outside the range min {low!r} .. max {high!r}")
        return value

    @model_validator(mode="after")
    def _ordered(self):
        low, high, _ = self.seconds
        if low > high:
            raise ValueError(f"min {self.min!r} is above max {self.max!r}")
        return self

    @property
    def seconds(self) -> tuple[int, int, int | None]:
        """(min, max, default) in seconds; default None: the site's culler.timeout."""
        default = None if self.default is None else parse_duration(self.default)
        return parse_duration(self.min), parse_duration(self.max), default

    @property
    def text(self) -> str:
        low, high, _ = self.seconds
        return f"{format_duration(low)} to {format_duration(high)}"


def choose_idle_timeout(slug: str, bounds: IdleTimeout | None, requested: str | int | None) -> int | None:
    if requested is None:
        return bounds.seconds[2] if bounds else None
    if bounds is None:
        raise ValueError(
            f"profile {slug!r} offers no idle timeout choice (its servers stop after the"
            f" site's idle timeout); leave {IDLE_TIMEOUT_KEY} out"
        )
    seconds = parse_duration(requested)
    low, high, _ = bounds.seconds
    if not low <= seconds <= high:
        raise ValueError(
            f"idle timeout {format_duration(seconds)} is not offered for profile {slug!r}:"
            f" pick one from {bounds.text}"
        )
    return seconds


def site_default_text(site_timeout: int | None) -> str:
    if site_timeout is None:
        return "the site's default"
    return f"{format_duration(site_timeout) if site_timeout else 'never'} (the site's default)"


def timeout_choices(bounds: IdleTimeout) -> list[int]:
    """Seconds the form offers: round steps within the bounds, the bounds and the default."""
    low, high, default = bounds.seconds
    listed = {low, high, *(s for s in _FORM_STEPS if low < s < high)}
    return sorted(listed | ({default} if default is not None else set()))
