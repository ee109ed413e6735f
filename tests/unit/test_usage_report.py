"""Usage for chargeback without a hub: the usage log's sessions and the report's arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from analysis_hub.usage import Session, UsageLog, parse_since, report

GIB = 2**30


def session(
    user="alice", team="data", profile="pyspark", cpu=1.0, memory=2 * GIB, gpus=0, start=0, stop=3600
):
    return Session("server", user, team, profile, cpu, memory, gpus, start, stop)


def test_report_sums_hours_and_reserved_resources_per_key_and_kind():
    """An hour of 2 CPUs, 4 GiB and 1 GPU is 1 hour, 2 CPU-hours, 4 GiB-hours and 1 GPU-hour."""
    rows = report([session(cpu=2, memory=4 * GIB, gpus=1), session(start=0, stop=1800)], 0, 7200, "team")
    assert rows == [
        {
            "team": "data",
            "kind": "server",
            "hours": 1.5,
            "cpu_hours": 2.5,
            "memory_gib_hours": 5.0,
            "gpu_hours": 1.0,
        }
    ]


def test_report_clips_to_the_window_and_counts_open_sessions_until_now():
    """Time before `since` is not counted; a session still running counts until `until`."""
    rows = report([session(start=0, stop=None, user="bob")], 1800, 5400, "user")
    assert rows[0]["user"] == "bob" and rows[0]["hours"] == 1.0
    assert report([session(start=0, stop=100)], 200, 300, "user") == []


def test_report_refuses_an_unknown_grouping():
    with pytest.raises(ValueError, match="team, user, profile"):
        report([], 0, 1, "image")


def test_the_usage_log_keeps_sessions_across_reopening(tmp_path):
    """A session opened by one process is closed by another (a hub restarted in between)."""
    path = tmp_path / "usage.sqlite"
    opened = UsageLog(path).open_session(
        user="alice", server="", profile="pyspark", team="data", cpu=1, memory_bytes=GIB, gpus=0, at=100.0
    )
    assert [s.stopped_at for s in UsageLog(path).sessions(0)] == [None]
    UsageLog(path).close_session(opened, 200.0)
    UsageLog(path).close_session(opened, 300.0)  # a second stop changes nothing
    assert [(s.started_at, s.stopped_at) for s in UsageLog(path).sessions(0)] == [(100.0, 200.0)]
    assert UsageLog(path).sessions(250.0) == []


@pytest.mark.parametrize(
    "text,expected",
    [("30d", datetime(2026, 11, 2, tzinfo=UTC)), ("12h", datetime(2026, 12, 1, 12, tzinfo=UTC))],
)
def test_since_takes_durations(text, expected):
    assert parse_since(text, datetime(2026, 12, 2, tzinfo=UTC)) == expected


def test_since_refuses_bad_input_naming_the_forms():
    with pytest.raises(ValueError, match="30d, 12h"):
        parse_since("a month", datetime(2026, 12, 2, tzinfo=UTC))
