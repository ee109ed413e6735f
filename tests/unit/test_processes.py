"""Finding and stopping the hub's own processes, with real processes (`sleep`, `sh`) and sockets.

The promises: a pid file names a process only while it is still the one
recorded (a reused pid is never signalled); a process that ignores SIGTERM
is killed after the grace time, one that doesn't is not; a hub's services are
told apart by its instance in their environment; a listening socket's
holder is found.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time

import pytest
from analysis_hub import leftovers, processes


@pytest.fixture
def spawn():
    started = []

    def start(argv, **kwargs):
        process = subprocess.Popen(argv, start_new_session=True, **kwargs)
        started.append(process)
        # Until the child has exec'd, its command line is still this Python's (a busy machine).
        while argv[0] not in processes.command_line(process.pid) and process.poll() is None:
            time.sleep(0.01)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()


def test_a_pid_file_names_its_process_only_while_it_is_the_one_recorded(tmp_path, spawn):
    """The recorded process is found; a wrong command or a process started after the file is not."""
    sleeper = spawn(["sleep", "30"])
    pid_file = tmp_path / "proxy.pid"
    pid_file.write_text(str(sleeper.pid))
    assert processes.recorded_pid(pid_file, "sleep") == sleeper.pid
    assert processes.recorded_pid(pid_file, "configurable-http-proxy") is None
    # The pid was written long before this process started: a reused pid, not the recorded one.
    an_hour_before = processes.started_at(sleeper.pid) - 3600
    os.utime(pid_file, (an_hour_before, an_hour_before))
    assert processes.recorded_pid(pid_file, "sleep") is None
    sleeper.kill()
    sleeper.wait()
    pid_file.touch()
    assert processes.recorded_pid(pid_file, "sleep") is None, "a process that is gone"
    assert processes.recorded_pid(tmp_path / "missing.pid", "sleep") is None


def test_stop_groups_kills_only_what_ignores_sigterm(spawn):
    """SIGTERM to each group; what still runs after the grace time is killed and reported."""
    polite = spawn(["sleep", "30"])
    stubborn = spawn(["sh", "-c", "trap '' TERM; echo ready; sleep 30"], stdout=subprocess.PIPE)
    assert stubborn.stdout.readline() == b"ready\n"  # SIGTERM is ignored from here on
    killed = processes.stop_groups([polite.pid, stubborn.pid], grace_s=0.5)
    assert killed == [stubborn.pid]
    assert polite.wait(5) == -15 and stubborn.wait(5) == -9


def test_stop_groups_ends_what_a_stopped_leader_left_in_its_group(spawn):
    """A leader that exits on SIGTERM while a member of its group ignores it: the member is killed too."""
    leader = spawn(
        ["sh", "-c", "sh -c \"trap '' TERM; echo ready; sleep 30\" & wait"], stdout=subprocess.PIPE
    )
    assert leader.stdout.readline() == b"ready\n"
    member = next(pid for pid in processes.all_pids() if processes.parent(pid) == leader.pid)
    processes.stop_groups([leader.pid], grace_s=1)  # the leader is a zombie until we reap it
    deadline = time.monotonic() + 5
    while processes.alive(member) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not processes.alive(member)
    leader.wait(5)


def test_a_hubs_services_are_found_by_its_instance(spawn):
    """Only processes with the instance and a service name in their environment are the hub's services."""
    base = {**os.environ, processes.INSTANCE_ENV: "analysis-hub-test1234"}
    culler = spawn(["sleep", "30"], env={**base, processes.SERVICE_ENV: "idle-culler"})
    spawn(["sleep", "30"], env=base)  # not a service: a user's server of the same hub has no service name
    spawn(
        ["sleep", "30"],
        env={**base, processes.INSTANCE_ENV: "analysis-hub-other", processes.SERVICE_ENV: "x"},
    )
    # Popen returns once the child has exec'd: /proc shows the child's own environment.
    assert processes.instance_services("analysis-hub-test1234") == {culler.pid: "idle-culler"}


def test_a_taken_port_is_reported_with_its_setting_and_holder(tmp_path):
    """`up` refuses a port another process listens on, naming the setting, the port and the pid."""
    from analysis_hub.settings import load_settings

    free = [_free_port() for _ in range(3)]
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert processes.listeners(port) == [os.getpid()]
        settings_file = tmp_path / "settings.yaml"
        settings_file.write_text(
            f"data_dir: {tmp_path / 'data'}\npipelines: {{port: {port}}}\n"
            f"hub: {{port: {free[0]}, internal_port: {free[1]}, proxy_api_port: {free[2]}}}\n"
        )
        problems = leftovers.port_problems(load_settings(settings_file))
    assert problems == [
        f"error: port {port} (pipelines.port) is in use by pid {os.getpid()}"
        f" ({processes.command_line(os.getpid())[:120]}); stop it or set pipelines.port"
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
