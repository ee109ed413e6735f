"""What starts a pipeline's run: the one vocabulary, shared by the service, pages, CLI and docs.

Contract: a deployment has one trigger, and each run records the trigger that
started it, in the same words:

| trigger  | a run starts when                                        |
|----------|----------------------------------------------------------|
| `manual` | someone asks (the API, the CLI); every pipeline allows it |
| `cron`   | the deployment's schedule (cron, in a time zone) fires    |
| `http`   | a POST carries the pipeline's own trigger token           |
| `after`  | a run of another pipeline ends (on success, failure, any) |

A run started by hand is `manual` whatever the deployment's trigger; a run
that repairs an earlier one (re-runs it from its failed steps) is `repair`.
`default_trigger(schedule)` is the trigger of a deployment request that
names none: `cron` when it has a schedule, else `manual`.
Nothing is imported, so the CLI reads this without loading the service.
"""

from __future__ import annotations

MANUAL = "manual"
CRON = "cron"
HTTP = "http"
AFTER = "after"
TRIGGERS = (MANUAL, CRON, HTTP, AFTER)
REPAIR = "repair"  # a run's trigger only, never a deployment's
AFTER_ON = ("success", "failure", "any")


def default_trigger(schedule: str | None) -> str:
    return CRON if schedule else MANUAL
