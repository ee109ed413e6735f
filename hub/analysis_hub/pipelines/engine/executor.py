"""Where a run executes: the interface every backend's executor implements, and what they share.

Contract:
- An `Executor` takes one run (`RunSpec`: the version's image, limits,
  kernel, parameters and timeout, already resolved and pure) and the
  notebook's text, executes it somewhere, and returns a `RunOutcome`. It
  never touches the database: the service records the outcome, retries and
  notifies.
- Every executor leaves the same files in the run's folder `out_dir`, so the
  pages and the API serve every backend's runs alike: `output.ipynb` (saved
  after every cell, so a run that dies keeps its partial output, with the
  error cell), `output.html` and `log.txt`.
- `Executor` is the base every executor inherits; it declares the optional
  parts with their defaults, so the service calls them without probing:
  - `prepare(spec)` is called when a version is deployed or rolled back to,
    before the change is stored (so a failing prepare refuses the change);
    the spec is the deployment's, with `run_id` 0. Default: nothing to store.
  - `async cancel(run_id) -> bool` stops a run that is going, wherever it
    runs (Kubernetes: the run's Jobs are deleted; the run's `run` then
    returns or is cancelled), False when there was none. Default: False,
    for executors whose `run` stops what it started when its task is
    cancelled.
  - `retries_itself`: True for an executor that retries a failed run within
    one `run` (a Kubernetes Job's `backoffLimit`, from `spec.retries`); the
    service then calls `run` once instead of once per attempt. Default: False.
  - `async end_run(run_id, status)` is called once a run has ended
    (cancelled included), for an executor that keeps something across a
    run's steps (Kubernetes: the claim of a workflow run's folder).
    Default: nothing kept.
- Which executor a service uses follows the backend table
  (`analysis_hub.backends`): the local backend's runs in the machine's
  sandbox, docker's in a container of the version's image, Kubernetes' as
  batch/v1 Jobs.

`papermill_arguments` and `finish_outcome` are the parts the executors share.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import nbformat

from ..publishing.notebooks import error_cell
from ..publishing.specs import RunSpec

INPUT, OUTPUT, PARAMETERS, LOG, HTML = (
    "input.ipynb",
    "output.ipynb",
    "parameters.json",
    "log.txt",
    "output.html",
)


@dataclass(frozen=True)
class RunOutcome:
    status: str  # succeeded | failed | timed_out | cancelled
    exit_code: int | None
    reason: str = ""
    error_cell: int | None = None


class Executor:
    """The base of every backend's executor: `run` is theirs; the optional parts' defaults."""

    retries_itself: bool = False

    async def run(self, spec: RunSpec, notebook: str, out_dir: Path) -> RunOutcome:
        """Execute `notebook` as `spec` says, leaving the run's files in `out_dir`."""
        raise NotImplementedError

    async def prepare(self, spec: RunSpec) -> None:
        """A version was deployed: store what later runs need (nothing by default)."""

    async def cancel(self, run_id: int) -> bool:
        """Stop the run `run_id` wherever it runs; False when there was nothing to stop."""
        return False

    async def end_run(self, run_id: int, status: str) -> None:
        """The run ended: release what was kept for it across its steps (nothing by default)."""


def papermill_arguments(kernel: str) -> list[str]:
    """papermill's command line after the interpreter, inside the run folder."""
    return [
        "-m",
        "papermill",
        INPUT,
        OUTPUT,
        "--parameters_file",
        PARAMETERS,
        "--kernel",
        kernel,
        "--log-output",
        "--no-progress-bar",
    ]


def finish_outcome(
    spec: RunSpec, out_dir: Path, code: int | None, timed_out: bool, oom_reason: str = ""
) -> RunOutcome:
    """The outcome of a papermill run from its exit and its files; renders `output.html`."""
    failed_cell = None
    output = out_dir / OUTPUT
    with contextlib.suppress(OSError, ValueError, nbformat.ValidationError):
        failed_cell = error_cell(nbformat.read(output, as_version=4))
    render_html(output, out_dir / HTML)
    if timed_out:
        return RunOutcome("timed_out", code, f"stopped after the timeout of {spec.timeout} s", failed_cell)
    if code == 0:
        return RunOutcome("succeeded", 0)
    return RunOutcome("failed", code, oom_reason or last_error(out_dir / LOG), failed_cell)


def render_html(notebook: Path, html: Path) -> None:
    if not notebook.exists():
        return
    from nbconvert import HTMLExporter  # slow to import; only where a run finishes

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(notebook, as_version=4))
    html.write_text(body)


def last_error(log: Path) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        text = ""
    lines = [line for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line or "Exception" in line]
    return (errors or lines or ["papermill failed without output"])[-1][:500]
