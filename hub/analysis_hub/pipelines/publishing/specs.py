"""Pure translations for pipelines: requests to versions and deployments, versions to run specs.

Contract:
- `merge_deployment(current, request)` is the deployment a change asks for:
  fields the request leaves out keep their values; a request naming a schedule
  but no trigger gets the default trigger for it (`triggers.default_trigger`),
  and a trigger other than `cron` without a schedule drops the old schedule.
- `check_deployment(...)` validates a deployment request (trigger, cron in
  a time zone, concurrency, timeout, retries, parameters) and returns the
  fields to store, or raises `SpecError` naming each bad field.
- `RunSpec` is everything an executor needs for one run (of a workflow: one
  step; `steps.step_spec` builds it): which version of which pipeline, its
  resolved profile (image, resources, env: nothing copied out of it), the
  merged and typed parameters, kernel and timeout.
- `NAME_RE`: pipeline and team names are short slugs, never paths.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ...catalog import ResolvedProfile
from ..triggers import AFTER, AFTER_ON, CRON, TRIGGERS, default_trigger
from .cron_words import cron_trigger
from .errors import SpecError
from .notebooks import NotebookError, Parameter, coerce_parameters

RUN_FOLDER_ENV = "ANALYSIS_HUB_RUN_FOLDER"  # a workflow step's shared run folder, in the step
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
CONCURRENCY = ("forbid", "allow")


@dataclass(frozen=True)
class RunSpec:
    """One run as an executor sees it. `team`, `pipeline` and `version` name what runs (an
    executor that stores something per version in `prepare` names it by them); `run_id` is 0
    in the spec `prepare` gets, when no run exists yet. `profile` is the version's resolved
    profile, which each backend's translation reads (every backend reserves what it says)."""

    run_id: int
    team: str
    pipeline: str
    version: int
    profile: ResolvedProfile
    kernel: str
    parameters: dict
    timeout: int = 3600
    # For executors that retry a run themselves (a Kubernetes Job's backoffLimit); the others ignore it.
    retries: int = 0
    # A workflow's step: its name (None for a single-notebook version), and the run's folder
    # that all its steps share (`RUN_FOLDER_ENV` names it inside the step), where the
    # backend has one on this machine (local, docker; Kubernetes mounts its own per-run volume).
    step: str | None = None
    run_folder: Path | None = None
    # A repair's: the run whose shared folder this run's starts as a copy of. The service
    # copies `run_folder` itself; an executor that keeps run folders elsewhere (Kubernetes) copies.
    run_folder_copy_of: int | None = None

    @property
    def image(self) -> str:
        return self.profile.image

    @property
    def env(self) -> dict[str, str]:
        """The profile's environment, and a workflow step's run folder where it is on this machine
        (an executor that mounts the folder elsewhere sets `RUN_FOLDER_ENV` to its path there)."""
        folder = {RUN_FOLDER_ENV: str(self.run_folder)} if self.run_folder is not None else {}
        return {**self.profile.env, **folder}

    def holder(self, separator: str) -> str:
        """The name of what this run (a workflow's step: this step) holds while it executes, its
        cgroup or its GPUs: steps of one run that execute at once each hold their own."""
        return f"run{separator}{self.run_id}" + (f"{separator}{self.step}" if self.step else "")


def check_name(kind: str, name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        shown = repr(name)[:40]
        raise SpecError(
            f"{kind}: {shown} is not a valid name (lower-case letters, digits and '-', at most 63)"
        )
    return name


def declared_parameters(version_parameters: dict) -> dict[str, Parameter]:
    return {name: Parameter(**p) for name, p in version_parameters.items()}


def merge_deployment(current: dict, request: dict) -> dict:
    request = dict(request)
    if "schedule" in request and "trigger" not in request:
        request["trigger"] = default_trigger(request["schedule"])
    if "after_pipeline" in request and "trigger" not in request:
        request["trigger"] = AFTER
    if request.get("trigger", CRON) != CRON:
        request.setdefault("schedule", None)
    return {**current, **request}


def check_deployment(request: dict, declared: dict[str, Parameter], versions: list[int]) -> dict:
    problems = []
    allowed = {
        "version",
        "trigger",
        "schedule",
        "timezone",
        "parameters",
        "concurrency",
        "timeout",
        "retries",
    }
    allowed |= {"paused", "notify_url", "notify_on_success", "new_trigger_token"}
    allowed |= {"after_pipeline", "after_on", "subscribers"}
    unknown = sorted(set(request) - allowed)
    if unknown:
        problems.append(f"{', '.join(unknown)}: unknown field (allowed: {', '.join(sorted(allowed))})")
    out: dict = {}
    version = request.get("version", versions[-1] if versions else None)
    if version not in versions:
        problems.append(f"version: {version!r} is not a published version (versions: {versions or 'none'})")
    out["active_version"] = version
    trigger = request.get("trigger", default_trigger(request.get("schedule")))
    if trigger not in TRIGGERS:
        problems.append(f"trigger: {trigger!r} is not one of {', '.join(TRIGGERS)}")
    out["trigger"] = trigger
    timezone = request.get("timezone", "UTC")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        problems.append(f"timezone: {timezone!r} is not a time zone name such as Europe/Paris or UTC")
        timezone = "UTC"
    out["timezone"] = timezone
    schedule = request.get("schedule")
    if trigger == CRON:
        try:
            cron_trigger(schedule or "", timezone)
        except (ValueError, TypeError) as e:
            problems.append(
                f"schedule: {schedule!r} is not a cron expression (minute hour day month weekday): {e}"
            )
    elif schedule:
        problems.append(f"schedule: only a trigger {CRON!r} has a schedule (trigger is {trigger!r})")
    out["schedule"] = schedule if trigger == CRON else None
    after_pipeline, after_on = request.get("after_pipeline"), request.get("after_on") or "success"
    if trigger == AFTER:
        team, _, name = str(after_pipeline or "").partition("/")
        if not (NAME_RE.match(team) and NAME_RE.match(name)):
            problems.append(
                f"after_pipeline: {after_pipeline!r}: trigger {AFTER!r} needs the upstream pipeline"
                " as team/name"
            )
        if after_on not in AFTER_ON:
            problems.append(f"after_on: {after_on!r} is not one of {', '.join(AFTER_ON)}")
    out["after_pipeline"] = after_pipeline if trigger == AFTER else None
    out["after_on"] = after_on if trigger == AFTER else None
    subscribers = request.get("subscribers") or []
    if not isinstance(subscribers, list) or not all(
        isinstance(t, str) and NAME_RE.match(t) for t in subscribers
    ):
        problems.append(
            f"subscribers: {subscribers!r} must be a list of team names that may chain after this one"
        )
    out["subscribers"] = sorted(set(subscribers)) if isinstance(subscribers, list) else []
    concurrency = request.get("concurrency", "forbid")
    if concurrency not in CONCURRENCY:
        problems.append(f"concurrency: {concurrency!r} is not one of {', '.join(CONCURRENCY)}")
    out["concurrency"] = concurrency
    for key, default, low, high in (("timeout", 3600, 1, 7 * 86400), ("retries", 0, 0, 10)):
        value = request.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            problems.append(f"{key}: {value!r} must be a whole number from {low} to {high}")
        out[key] = value
    try:
        out["parameters"] = coerce_parameters(declared, dict(request.get("parameters") or {}))
    except NotebookError as e:
        problems.append(f"parameters: {e}")
    out["paused"] = bool(request.get("paused", False))
    notify_url = request.get("notify_url")
    if notify_url is not None and not re.match(r"^https?://\S+$", str(notify_url)):
        problems.append(f"notify_url: {str(notify_url)[:60]!r} is not an http(s) URL")
    out["notify_url"] = notify_url
    out["notify_on_success"] = bool(request.get("notify_on_success", False))
    if problems:
        raise SpecError("; ".join(problems))
    return out


def run_parameters(declared: dict[str, Parameter], deployed: dict, given: dict) -> dict:
    """Defaults of the version < the deployment's overrides < this run's, all typed."""
    merged = {name: p.default for name, p in declared.items()}
    merged.update(deployed or {})
    try:
        merged.update(coerce_parameters(declared, given or {}))
    except NotebookError as e:
        raise SpecError(f"parameters: {e}") from None
    return merged
