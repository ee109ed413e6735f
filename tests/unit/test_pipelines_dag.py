"""A workflow run's next moves (pipelines.dag, pure): conditions as written in pipeline.yaml, what
starts, what is skipped and why, and the run's status when nothing is left to do."""

from __future__ import annotations

import pytest
from analysis_hub.pipelines.engine.dag import APPROVAL, Step, StepState, next_moves, parse_condition

PREPARE = Step("prepare")
TRAIN = Step("train", depends_on=("prepare",), when=(parse_condition("prepare.rows > 0"),))
PUBLISH = Step("publish", depends_on=("train",), when=(parse_condition("train.accuracy >= 0.5"),))
THREE = [PREPARE, TRAIN, PUBLISH]


def states(**given) -> dict[str, StepState]:
    """Every step of THREE pending unless given: name=status or name=(status, outputs)."""
    out = {s.name: StepState() for s in THREE}
    for name, value in given.items():
        out[name] = StepState(*value) if isinstance(value, tuple) else StepState(value)
    return out


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("prepare succeeded", ("prepare", "succeeded", None, None, None)),
        ("  train failed ", ("train", "failed", None, None, None)),
        ("review rejected", ("review", "rejected", None, None, None)),
        ("prepare.rows > 0", ("prepare", None, "rows", ">", 0)),
        ("train.accuracy>=0.5", ("train", None, "accuracy", ">=", 0.5)),
        ('prepare.mode == "full"', ("prepare", None, "mode", "==", "full")),
        ("check.ok != false", ("check", None, "ok", "!=", False)),
        ("check.path == null", ("check", None, "path", "==", None)),
    ],
)
def test_conditions_parse_status_and_output_forms(text, parsed):
    """A condition is `<step> succeeded|failed|rejected` or `<step>.<output> <op> <JSON literal>`,
    spaces around the operator optional."""
    c = parse_condition(text)
    assert (c.step, c.status, c.output, c.op, c.value) == parsed
    assert c.text == text.strip()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("prepare finished", "write '<step> succeeded|failed|rejected'"),
        ("prepare.rows ~ 3", "op one of == != > >= < <="),
        ("rows > 0", "'<step>.<output> <op> <value>'"),
        ("prepare.mode == full", "'full' is not a JSON value"),
        (3, "3 is not a condition; write e.g. 'prepare.rows > 0'"),
        (None, "None is not a condition"),
    ],
)
def test_bad_conditions_are_refused_with_the_allowed_forms(text, says):
    """A condition that is none of the forms is refused, saying what is allowed (an unquoted
    string value: that it is not a JSON value)."""
    with pytest.raises(ValueError) as refused:
        parse_condition(text)
    assert says in str(refused.value)


def test_steps_start_in_dependency_order_by_the_default_rule():
    """At first only the step without dependencies starts; its dependants start once it
    succeeded and their conditions hold; independent ready steps start together."""
    assert next_moves(THREE, states()).start == ["prepare"]
    assert next_moves(THREE, states(prepare="running")).start == []
    moves = next_moves(THREE, states(prepare=("succeeded", {"rows": 5})))
    assert (moves.start, moves.skip, moves.finished) == (["train"], {}, False)
    fan = [Step("a"), Step("b"), Step("c", depends_on=("a", "b"))]
    assert next_moves(fan, {n: StepState() for n in "abc"}).start == ["a", "b"]
    both = {"a": StepState("succeeded"), "b": StepState("running"), "c": StepState()}
    assert next_moves(fan, both).start == []


def test_a_failed_dependency_skips_its_dependants_with_the_reason_and_fails_the_run():
    """Without a status condition a step needs its dependencies to have succeeded: a failed
    step skips everything downstream at once, each skip saying which step didn't succeed,
    and the run fails at that step."""
    moves = next_moves(THREE, states(prepare=("succeeded", {"rows": 5}), train="failed"))
    assert moves.skip == {"publish": "skipped: train failed"}
    assert (moves.finished, moves.status, moves.culprit, moves.reason) == (
        True,
        "failed",
        "train",
        "step train failed",
    )
    early = next_moves(THREE, states(prepare="timed_out"))
    assert early.skip == {"train": "skipped: prepare timed_out", "publish": "skipped: train skipped"}
    assert (early.status, early.culprit) == ("failed", "prepare")


def test_an_output_condition_that_does_not_hold_skips_with_the_value_seen():
    """`when: prepare.rows > 0` with rows 0 skips train, saying the condition and the value;
    a missing output says so; skipping by a condition is not a failure (the run succeeds)."""
    moves = next_moves(THREE, states(prepare=("succeeded", {"rows": 0})))
    assert moves.skip == {
        "train": "skipped: 'prepare.rows > 0' does not hold (prepare.rows is 0)",
        "publish": "skipped: train skipped",
    }
    assert (moves.finished, moves.status, moves.reason) == (True, "succeeded", "")
    missing = next_moves(THREE, states(prepare=("succeeded", {})))
    assert (
        missing.skip["train"]
        == "skipped: 'prepare.rows > 0' does not hold (prepare recorded no output 'rows')"
    )
    mistyped = next_moves(THREE, states(prepare=("succeeded", {"rows": "many"})))
    assert mistyped.skip["train"] == "skipped: 'prepare.rows > 0' does not hold (prepare.rows is \"many\")"


def test_a_status_condition_runs_a_handler_after_a_failure():
    """`when: train failed` replaces the default rule: the handler runs when train failed (or
    timed out) and is skipped when it succeeded; the run still fails at train."""
    handler = Step("alert", depends_on=("train",), when=(parse_condition("train failed"),))
    steps = [PREPARE, TRAIN, handler]
    base = {"prepare": StepState("succeeded", {"rows": 1}), "alert": StepState()}
    failed = next_moves(steps, {**base, "train": StepState("failed")})
    assert (failed.start, failed.skip) == (["alert"], {})
    done = next_moves(steps, {**base, "train": StepState("failed"), "alert": StepState("succeeded")})
    assert (done.finished, done.status, done.culprit) == (True, "failed", "train")
    assert next_moves(steps, {**base, "train": StepState("timed_out")}).start == ["alert"]
    fine = next_moves(steps, {**base, "train": StepState("succeeded")})
    assert fine.skip == {"alert": "skipped: 'train failed' does not hold (train succeeded)"}
    assert fine.status == "succeeded"


def test_the_run_status_prefers_failed_then_rejected_then_cancelled():
    """A finished run is failed if any step failed or timed out, else rejected if a gate was,
    else cancelled if a step was, else succeeded."""
    steps = [Step("a"), Step("b"), Step("c"), Step("d")]

    def status(*given):
        return next_moves(steps, {s.name: StepState(g) for s, g in zip(steps, given, strict=True)}).status

    assert status("cancelled", "rejected", "failed", "succeeded") == "failed"
    assert status("cancelled", "timed_out", "rejected", "succeeded") == "failed"
    assert status("cancelled", "rejected", "skipped", "succeeded") == "rejected"
    assert status("succeeded", "cancelled", "skipped", "approved") == "cancelled"
    assert status("succeeded", "skipped", "skipped", "approved") == "succeeded"


def test_a_run_at_an_undecided_gate_is_waiting_with_nothing_to_start():
    """A gate waiting for its approvers, with its downstream steps pending behind it and nothing
    running, leaves the run `waiting` (not finished, nothing to start); approved, the downstream
    step starts; rejected, it is skipped and the run ends rejected at the gate."""
    steps = [PREPARE, Step("review", APPROVAL, ("prepare",)), Step("deploy", depends_on=("review",))]
    base = {"prepare": StepState("succeeded"), "deploy": StepState()}
    waiting = next_moves(steps, {**base, "review": StepState("waiting")})
    assert (waiting.start, waiting.skip, waiting.finished, waiting.status) == ([], {}, False, "waiting")
    assert next_moves(steps, {**base, "review": StepState("approved")}).start == ["deploy"]
    rejected = next_moves(steps, {**base, "review": StepState("rejected")})
    assert rejected.skip == {"deploy": "skipped: review rejected"}
    assert (rejected.status, rejected.culprit) == ("rejected", "review")


def test_a_gate_waiting_beside_a_running_step_keeps_the_run_going():
    """While another branch still runs, a waiting gate doesn't make the run `waiting`: the run
    goes on until the running step ends."""
    steps = [Step("gate", APPROVAL), Step("work"), Step("after", depends_on=("gate",))]
    moves = next_moves(
        steps, {"gate": StepState("waiting"), "work": StepState("running"), "after": StepState()}
    )
    assert (moves.start, moves.finished, moves.status) == ([], False, None)
