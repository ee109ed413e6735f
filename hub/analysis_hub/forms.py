"""Render the spawn form from the catalog.

Pure: profiles in, HTML out (Jinja2 with autoescaping, the template beside
this module). Options that need more GPUs than the machine has are shown
disabled with the reason, so the form never offers what the hub would refuse.
A profile with an `idle_timeout` range offers its timeouts (default selected);
without a default of its own, the site's comes first, with its length
(`site_idle_timeout`: the culler's timeout in seconds, 0 when it is off).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from .catalog import Profile, resolve
from .idle_timeouts import site_default_text, timeout_choices
from .quantities import format_cpu, format_duration, format_memory

_TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)


def gpu_shortfall(needed: int, available: int | None) -> str:
    """Why `needed` GPUs can't be had ('' when they can; None = not counted here)."""
    if available is None or needed <= available:
        return ""
    if available == 0:
        return "needs a GPU; this machine has none"
    return f"needs {needed} GPUs; this machine has {available}"


def render_profile_form(
    profiles: list[Profile], gpus_available: int | None = None, site_idle_timeout: int | None = None
) -> str:
    views = [_profile_view(p, gpus_available, site_idle_timeout) for p in profiles]
    selectable = [v for v in views if not v["unavailable"]]
    default = next((p.slug for p in profiles if p.default), None)
    if default not in {v["slug"] for v in selectable}:
        default = selectable[0]["slug"] if selectable else None
    return _TEMPLATES.get_template("profile_form.html").render(profiles=views, selected=default)


def _profile_view(profile: Profile, gpus_available: int | None, site_idle_timeout: int | None) -> dict:
    choices = []
    for name, choice in profile.choices.items():
        options = []
        for option_name, option in choice.options.items():
            needed = resolve(profile, {name: option_name}).resources.gpus
            options.append(
                {
                    "name": option_name,
                    "display_name": option.display_name,
                    "unavailable": gpu_shortfall(needed, gpus_available),
                }
            )
        usable = [o["name"] for o in options if not o["unavailable"]]
        default = choice.default if choice.default in usable else (usable[0] if usable else choice.default)
        choices.append(
            {"name": name, "display_name": choice.display_name, "default": default, "options": options}
        )
    selected = {c["name"]: c["default"] for c in choices}
    resources = resolve(profile, selected).resources
    # Every combination of options -> its resources, so the card's figures
    # follow the drop-downs (a few lines of script in the template).
    combinations = itertools.product(*([o["name"] for o in c["options"]] for c in choices))
    by_choice = {
        "|".join(combo): resources_text(resolve(profile, dict(zip(selected, combo, strict=True))).resources)
        for combo in itertools.islice(combinations, 256)
    }
    return {
        "slug": profile.slug,
        "display_name": profile.display_name,
        "description": profile.description,
        "image": profile.image,
        "resources": resources_text(resources),
        "resources_by_choice": json.dumps(by_choice) if choices else "",
        "allowed_groups": profile.allowed_groups,
        "choices": choices,
        "idle_timeout": _idle_timeout_view(profile, site_idle_timeout),
        "unavailable": gpu_shortfall(resources.gpus, gpus_available),
    }


def _idle_timeout_view(profile: Profile, site_idle_timeout: int | None) -> dict | None:
    """The timeouts offered; without a profile default, the site's (value "") is selected."""
    bounds = profile.idle_timeout
    if bounds is None:
        return None
    default = bounds.seconds[2]
    options = [{"value": str(s), "text": format_duration(s)} for s in timeout_choices(bounds)]
    if default is None:
        options.insert(0, {"value": "", "text": site_default_text(site_idle_timeout)})
    return {"default": "" if default is None else str(default), "options": options}


def resources_text(r) -> str:
    """A server's resources as the form and the home page show them."""
    text = (
        f"CPU {_bounds(r.cpu_guarantee, r.cpu_limit, format_cpu)}"
        f" · memory {_bounds(r.memory_guarantee, r.memory_limit, format_memory)}"
    )
    return text + (f" · {r.gpus} GPU{'s' if r.gpus > 1 else ''}" if r.gpus else "")


def _bounds(guarantee, limit, fmt) -> str:
    if guarantee is None and limit is None:
        return "unlimited"
    if guarantee is None or guarantee == limit:
        return f"up to {fmt(limit)}" if guarantee is None else fmt(guarantee)
    if limit is None:
        return f"{fmt(guarantee)} guaranteed"
    return f"{fmt(guarantee)} guaranteed, up to {fmt(limit)}"
