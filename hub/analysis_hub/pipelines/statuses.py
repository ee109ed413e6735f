"""A run's and a step's statuses: the one vocabulary, shared by the service, its pages and the CLI.

Contract:
- A run is `queued`, `running` or `waiting` (`UNFINISHED`; a waiting run
  stopped at an approval gate, and nothing of it runs until someone
  decides), and ends in one of `FINISHED`. `ACTIVE` are the runs a stopped
  service interrupts (a waiting run holds nothing).
- A step (`StepRun`, `dag.StepState`) is `pending`, `running` or `waiting` (a
  gate), and ends in one of `STEP_FINISHED`: a run's `FINISHED`, and
  `approved`, which only a gate's step is (a run goes on past an approved
  gate). A step has done its part for the steps after it when it is one of
  `STEP_SUCCEEDED`.
Nothing is imported, so the CLI reads this without loading the service.
"""

from __future__ import annotations

FINISHED = ("succeeded", "failed", "timed_out", "cancelled", "skipped", "rejected")
UNFINISHED = ("queued", "running", "waiting")
ACTIVE = ("queued", "running")
APPROVED = "approved"  # a step's only: an approval gate someone approved
STEP_FINISHED = (*FINISHED, APPROVED)
STEP_SUCCEEDED = ("succeeded", APPROVED)
