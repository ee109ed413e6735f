"""Which profile a spawn request asks for, and whether the user may have it.

Pure functions shared by every backend. A request is `user_options`, from
the REST API or the spawn form:

    {"profile": "<slug>", "<choice name>": "<option>", ..., "idle_timeout": "45m"}

`idle_timeout` (a duration or whole seconds) must lie in the profile's
`idle_timeout` range; the resolved profile carries the chosen seconds.
`select_profile` returns the `ResolvedProfile` or raises
`ProfileRequestError`, whose message the hub returns as HTTP 400 before
anything starts. Keys other than `profile` must be choices of that profile,
so a request cannot smuggle in an image or resources.
"""

from __future__ import annotations

from .catalog import SLUG_RE, Catalog, ResolvedProfile, is_allowed, resolve
from .idle_timeouts import IDLE_TIMEOUT_KEY

FORM_PROFILE = "profile"
FORM_CHOICE_PREFIX = "choice."
FORM_IDLE_TIMEOUT_PREFIX = "idle_timeout."
MAX_NAME = 64


class ProfileRequestError(ValueError):
    """A spawn request the catalog does not allow; the message is shown to the user."""


def select_profile(catalog: Catalog, groups: set[str], user_options: dict | None) -> ResolvedProfile:
    options = dict(user_options or {})
    slug = options.pop("profile", None)
    # "" is the forms' "the site's default".
    requested_timeout = options.pop(IDLE_TIMEOUT_KEY, None) or None
    if slug is None:
        allowed = catalog.allowed_for(groups)
        if not allowed:
            raise ProfileRequestError("No profile is available to your groups; ask an admin.")
        default = catalog.default if catalog.default in allowed else allowed[0]
        slug = default.slug
    if not isinstance(slug, str) or not SLUG_RE.match(slug):
        raise ProfileRequestError(f"{_shown(slug)} is not a profile name (lower-case letters, digits, '-').")
    profile = catalog.get(slug)
    if profile is None or not is_allowed(profile, groups):
        # The same answer for "unknown" and "not yours": don't reveal hidden profiles.
        available = ", ".join(p.slug for p in catalog.allowed_for(groups)) or "none"
        raise ProfileRequestError(f"Unknown profile {_shown(slug)}. Profiles you can use: {available}.")
    for key, value in options.items():
        if not isinstance(value, str):
            raise ProfileRequestError(f"Choice {_shown(key)} must be a string, got {type(value).__name__}.")
        if len(key) > MAX_NAME or len(value) > MAX_NAME:
            # Catalog names are short slugs; a megabyte of input is not echoed back.
            raise ProfileRequestError(
                f"Choice {_shown(key)} = {_shown(value)} is too long to be a catalog name."
            )
    if requested_timeout is not None and not isinstance(requested_timeout, str | int):
        raise ProfileRequestError(
            f"{IDLE_TIMEOUT_KEY} must be a duration such as '30m' or whole seconds,"
            f" got {type(requested_timeout).__name__}."
        )
    if isinstance(requested_timeout, str) and len(requested_timeout) > MAX_NAME:
        raise ProfileRequestError(f"{IDLE_TIMEOUT_KEY} = {_shown(requested_timeout)} is too long.")
    try:
        return resolve(profile, options, requested_timeout)
    except ValueError as e:
        raise ProfileRequestError(str(e)[:1].upper() + str(e)[1:] + ".") from None


def _shown(value, limit: int = 40) -> str:
    """A request's value as the error shows it: quoted, and cut short (it may be megabytes)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def options_from_form(formdata: dict[str, list[str]]) -> dict[str, str]:
    """Spawn-form fields -> user_options: the picked profile, *its* choices and idle timeout."""
    slug = (formdata.get(FORM_PROFILE) or [""])[0]
    options = {"profile": slug}
    timeout = formdata.get(f"{FORM_IDLE_TIMEOUT_PREFIX}{slug}")
    if timeout and timeout[0]:
        options[IDLE_TIMEOUT_KEY] = timeout[0]
    prefix = f"{FORM_CHOICE_PREFIX}{slug}."
    for key, values in formdata.items():
        if key.startswith(prefix) and values:
            options[key[len(prefix) :]] = values[0]
    return options
