"""How the pipeline pages say times, durations and the duration chart (pipelines.humane)."""

from __future__ import annotations

from datetime import UTC, datetime

from analysis_hub.pipelines.web.humane import (
    ago,
    changes,
    duration_chart,
    exact,
    form_parameters,
    run_seconds,
    say_duration,
)

NOW = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)


def run(id, status, started=None, finished=None):
    return {"id": id, "status": status, "started_at": started, "finished_at": finished}


def test_ago_says_how_long_ago_or_how_soon():
    """Seconds are 'just now'; minutes, hours and days are rounded; the future is 'in ...'; an
    offset or a bare time (the database's, UTC) both read right; no time says nothing."""
    assert [
        ago(t, NOW)
        for t in (
            "2026-12-02T11:59:30Z",
            "2026-12-02T11:57:00.123456Z",
            "2026-12-02T09:10:00Z",
            "2026-11-30T11:00:00Z",
            "2026-11-01T11:00:00",
            "2026-12-02T13:00:00+01:00",
            "2026-12-02T12:20:00+00:00",
            None,
        )
    ] == ["just now", "3 min ago", "3 h ago", "2 days ago", "31 days ago", "just now", "in 20 min", ""]
    assert exact("2026-12-02T11:57:00.123456Z") == "2026-12-02 11:57:00 UTC"


def test_durations_in_words_and_of_runs():
    """A finished run lasts from start to finish, a running one until now, a queued one has none."""
    assert [say_duration(s) for s in (None, 0.4, 59, 60, 192, 3600, 3900)] == [
        "",
        "0 s",
        "59 s",
        "1 min",
        "3 min 12 s",
        "1 h",
        "1 h 5 min",
    ]
    assert run_seconds(run(1, "succeeded", "2026-12-02T11:00:00Z", "2026-12-02T11:00:42Z"), NOW) == 42
    assert run_seconds(run(2, "running", "2026-12-02T11:59:00Z"), NOW) == 60
    assert run_seconds(run(3, "queued"), NOW) is None


def test_the_chart_shows_the_last_30_runs_oldest_first_scaled_to_the_longest():
    """Of 35 runs (newest first, as the API lists them) the chart has the newest 30, oldest on the
    left; the longest fills the height, others are in proportion, one without a duration is a stub;
    each bar keeps its run's id and status (its colour)."""
    runs = [run(i, "failed", "2026-12-02T11:00:00Z", "2026-12-02T11:00:10Z") for i in range(35, 0, -1)]
    runs[0] = run(35, "succeeded", "2026-12-02T11:00:00Z", "2026-12-02T11:00:20Z")
    runs[1] = run(34, "skipped")
    bars = duration_chart(runs, NOW, width=300, height=62)
    assert [b["id"] for b in bars] == list(range(6, 36))
    assert (bars[-1]["status"], bars[-1]["h"], bars[-1]["y"]) == ("succeeded", 60.0, 2.0)
    assert (bars[0]["status"], bars[0]["h"], bars[0]["x"], bars[0]["w"]) == ("failed", 30.0, 1.0, 8.0)
    assert (bars[-2]["h"], bars[-2]["title"]) == (2.0, "#34 skipped")
    assert bars[-1]["title"] == "#35 succeeded, 20 s"
    assert duration_chart([], NOW) == []


def test_the_run_form_gives_only_declared_parameters_as_strings():
    """The run form's `param.<name>` fields of declared parameters, the last value of each; the XSRF
    field and unknown names are left out."""
    form = {"_xsrf": [b"t"], "param.n": [b"1", b"3"], "param.flag": [b"false"], "param.evil": [b"x"]}
    declared = {"n": {"type": "int", "default": 2}, "flag": {"type": "bool", "default": True}}
    assert form_parameters(declared, form) == {"n": "3", "flag": "false"}


def test_exact_times_carry_their_zone():
    """UTC unless a zone is given (a schedule's: its next run in Paris time); an unknown zone falls
    back to UTC rather than failing the page."""
    assert exact("2026-12-07T05:00:00Z") == "2026-12-07 05:00:00 UTC"
    assert exact("2026-12-07T05:00:00Z", "Europe/Paris") == "2026-12-07 06:00:00 CET"
    assert exact("2026-07-07T05:00:00Z", "Europe/Paris") == "2026-07-07 07:00:00 CEST"
    assert exact("2026-12-07T05:00:00Z", "Mars/Olympus") == "2026-12-07 05:00:00 UTC"
    assert exact(None) == ""


def test_an_audit_event_says_what_it_changed():
    """Only the fields that differ, old → new; seconds as a duration, times with their zone (also an
    older event's str() of a datetime), None as "none"; a one-sided event says its fields; a
    decision says which run and step it was about."""
    before = {"active_version": 1, "timeout": 3600, "schedule": "0 6 * * 1-5", "paused": False}
    after = {"active_version": 1, "timeout": 120, "schedule": None, "paused": False}
    assert changes(before, after) == ["timeout: 1 h → 2 min", "schedule: 0 6 * * 1-5 → none"]
    assert changes(before, before) == ["no change"]
    asked = {"run": 3, "approvers": "ml-leads", "deadline": "2026-12-06 13:06:22.409509"}
    assert changes(None, asked) == ["run: 3", "approvers: ml-leads", "deadline: 2026-12-06 13:06:22 UTC"]
    assert changes({"kept": ["prepare"]}, None) == ['kept: ["prepare"]']
    decided = {"run": 2, "step": "review", "decision": "rejected", "comment": "not now"}
    assert changes({"run": 2, "step": "review", "status": "waiting"}, decided) == [
        "run: 2",
        "step: review",
        "status: was waiting",
        "decision: rejected",
        "comment: not now",
    ]
