"""A workflow run's next moves from its steps' states: pure, so every backend and the tests agree.

Contract:
- A `Step` is one node of a version's workflow (`workflow_spec.py` builds them
  from `pipeline.yaml`; a single-notebook version is one step): a `notebook`
  step or an `approval` gate, its `depends_on`, and its `when` conditions.
- A condition (`parse_condition`) is one of
    `<step> succeeded` | `<step> failed` | `<step> rejected`
    `<step>.<output> <op> <JSON literal>`, op one of == != > >= < <=
  and names an upstream step (an ancestor); a step's conditions must all hold.
- `next_moves(steps, states)` says what to do now: the steps to start (every
  dependency finished and the conditions hold), the steps to skip with the
  reason (a dependency that didn't succeed, a condition that doesn't hold),
  and, when nothing is left to start or waiting, the run's final status.
  Without a status condition a step needs every dependency to have succeeded
  (an approved gate has); a status condition (`prepare failed`) replaces
  that rule, so a step can handle an upstream failure.
- The run's status: `failed` when a step failed or timed out (whatever ran
  after it), else `rejected` when a gate was rejected, else `cancelled`
  when a step was, else `succeeded`. A gate waiting for a decision leaves
  the run `waiting`: nothing runs and nothing is held until someone decides.
"""

from __future__ import annotations

import json
import operator
import re
from dataclasses import dataclass, field

from ..statuses import STEP_FINISHED, STEP_SUCCEEDED

NOTEBOOK, APPROVAL = "notebook", "approval"
OPERATORS = {
    "==": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
STATUS_WORDS = {"succeeded": STEP_SUCCEEDED, "failed": ("failed", "timed_out"), "rejected": ("rejected",)}
_STATUS = re.compile(r"^\s*([a-z][a-z0-9_]*)\s+(succeeded|failed|rejected)\s*$")
_OUTPUT = re.compile(r"^\s*([a-z][a-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)\s*(==|!=|>=|<=|>|<)\s*(.+?)\s*$")


@dataclass(frozen=True)
class Condition:
    text: str
    step: str
    status: str | None = None  # succeeded | failed | rejected
    output: str | None = None
    op: str | None = None
    value: object = None

    def holds(self, state: StepState) -> tuple[bool, str]:
        """Whether it holds for `state` (the named step's), and why not."""
        if self.status is not None:
            ok = state.status in STATUS_WORDS[self.status]
            return ok, "" if ok else f"{self.text!r} does not hold ({self.step} {state.status})"
        if self.output not in state.outputs:
            return False, f"{self.text!r} does not hold ({self.step} recorded no output {self.output!r})"
        try:
            ok = bool(OPERATORS[self.op](state.outputs[self.output], self.value))
        except TypeError:
            ok = False
        shown = json.dumps(state.outputs[self.output])[:80]
        return ok, "" if ok else f"{self.text!r} does not hold ({self.step}.{self.output} is {shown})"


def parse_condition(text: str) -> Condition:
    """A condition from its text, or ValueError saying what is allowed."""
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a condition; write e.g. 'prepare.rows > 0' or 'train failed'")
    if match := _STATUS.match(text):
        return Condition(text.strip(), match[1], status=match[2])
    if match := _OUTPUT.match(text):
        try:
            value = json.loads(match[4])
        except ValueError:
            raise ValueError(
                f"{text!r}: {match[4]!r} is not a JSON value (a number, true/false, null or a"
                ' "quoted string")'
            ) from None
        return Condition(text.strip(), match[1], output=match[2], op=match[3], value=value)
    raise ValueError(
        f"{text!r} is not a condition: write '<step> succeeded|failed|rejected' or"
        " '<step>.<output> <op> <value>' with op one of == != > >= < <= (e.g. 'prepare.rows > 0')"
    )


@dataclass(frozen=True)
class Step:
    name: str
    kind: str = NOTEBOOK
    depends_on: tuple[str, ...] = ()
    when: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class StepState:
    status: str = "pending"  # pending | running | waiting | one of statuses.STEP_FINISHED
    outputs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Moves:
    start: list[str]
    skip: dict[str, str]  # step -> why
    finished: bool = False
    status: str | None = None  # the run's, once finished; `waiting` while a gate waits
    reason: str = ""
    culprit: str | None = None  # the step the run failed or was rejected at


def next_moves(steps: list[Step], states: dict[str, StepState]) -> Moves:
    start, skip = [], {}
    # Skips settle in one pass in order: a step listed after its dependencies (workflow_spec.py
    # keeps steps in a topological order) sees their skips at once.
    settled = dict(states)
    for step in steps:
        if settled[step.name].status != "pending":
            continue
        deps = [settled[d] for d in step.depends_on]
        if any(d.status not in STEP_FINISHED for d in deps):
            continue
        why = _why_not(step, settled)
        if why:
            skip[step.name] = f"skipped: {why}"
            settled[step.name] = StepState("skipped")
        else:
            start.append(step.name)
    if start or any(s.status == "running" for s in settled.values()):
        return Moves(start, skip)
    # Steps still pending here wait behind a gate (their dependencies' skips settled above).
    if any(s.status == "waiting" for s in settled.values()):
        return Moves(start, skip, status="waiting")
    if any(s.status == "pending" for s in settled.values()):
        return Moves(start, skip)
    status, culprit = run_status(steps, settled)
    reason = f"step {culprit} {settled[culprit].status}" if culprit else ""
    return Moves(start, skip, finished=True, status=status, reason=reason, culprit=culprit)


def _why_not(step: Step, states: dict[str, StepState]) -> str:
    if not any(c.status for c in step.when):
        for dep in step.depends_on:
            if states[dep].status not in STEP_SUCCEEDED:
                return f"{dep} {states[dep].status}"
    for condition in step.when:
        ok, why = condition.holds(states[condition.step])
        if not ok:
            return why
    return ""


def run_status(steps: list[Step], states: dict[str, StepState]) -> tuple[str, str | None]:
    """The finished run's status, and the step it failed or was rejected at."""
    for wanted, status in ((("failed", "timed_out"), "failed"), (("rejected",), "rejected")):
        for step in steps:
            if states[step.name].status in wanted:
                return status, step.name
    if any(states[s.name].status == "cancelled" for s in steps):
        return "cancelled", None
    return "succeeded", None


def ancestors(steps: list[Step], name: str) -> set[str]:
    by_name = {s.name: s for s in steps}
    seen: set[str] = set()
    todo = list(by_name[name].depends_on)
    while todo:
        dep = todo.pop()
        if dep not in seen:
            seen.add(dep)
            todo.extend(by_name[dep].depends_on)
    return seen
