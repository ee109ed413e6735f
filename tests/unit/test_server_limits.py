"""Servers per user and GPU servers per user: the limits every backend applies with a clear 400."""

from __future__ import annotations

import pytest
from analysis_hub.server_limits import RunningServer, ServerLimitError, ServerLimits, check_server_limits

LIMITS = ServerLimits(max_per_user=3, max_gpu_per_user=1)
SPARK = RunningServer("spark", "pyspark", 0)
TORCH = RunningServer("train", "pytorch", 1)


def test_under_the_limits_nothing_is_refused():
    """Two running servers, one of them on a GPU: a third CPU server may start."""
    check_server_limits(LIMITS, "alice", "tf", 0, [SPARK, TORCH])


def test_a_server_over_the_count_is_refused_naming_the_limit_and_the_running_servers():
    """A fourth server is refused; the message names the setting, its value and the three servers."""
    running = [SPARK, TORCH, RunningServer("", "tensorflow", 0)]
    with pytest.raises(ServerLimitError) as refused:
        check_server_limits(LIMITS, "alice", "more", 0, running)
    message = str(refused.value)
    assert "servers.max_per_user = 3" in message and "alice already runs 3 servers" in message
    assert "the default server (tensorflow)" in message and "'spark' (pyspark)" in message
    assert "'train' (pytorch, 1 GPU)" in message


def test_a_second_gpu_server_is_refused_but_a_cpu_one_is_not():
    """With one GPU server running, another GPU server is refused (naming it); a CPU one starts."""
    with pytest.raises(ServerLimitError) as refused:
        check_server_limits(LIMITS, "alice", "train2", 2, [SPARK, TORCH])
    message = str(refused.value)
    assert "servers.max_gpu_per_user = 1" in message and "'train' (pytorch, 1 GPU)" in message
    assert "spark" not in message
    check_server_limits(LIMITS, "alice", "prep", 0, [SPARK, TORCH])


def test_restarting_the_same_server_does_not_count_itself():
    """A server being (re)started is not one of the 'others' it is counted against."""
    check_server_limits(ServerLimits(1, 1), "alice", "train", 1, [TORCH])


def test_no_gpu_servers_at_all_and_no_limits():
    """max_gpu_per_user 0 refuses every GPU server; None means no limit."""
    with pytest.raises(ServerLimitError, match="max_gpu_per_user = 0"):
        check_server_limits(ServerLimits(3, 0), "bob", "x", 1, [])
    check_server_limits(ServerLimits(None, None), "bob", "x", 4, [TORCH] * 10)
