"""Profile limits are enforced by cgroups, users are separate Unix users, and a
server killed for memory is stopped whole with the reason on the hub page.

The hub runs as root here (as in CI), which turns on per-user Unix users and
cgroup limits. A catalog copy adds a small-memory profile from the pytorch
image so the limit is reached quickly.
"""

from __future__ import annotations

import json
import shutil
import time

import pytest
import yaml
from conftest import REPO, make_workdir, start_hub
from kernels import KernelError, run_code

pytestmark = pytest.mark.integration

SMALL_MEMORY = 700 * 2**20
CGROUP_FACTS = """
import json, pathlib
lines = open('/proc/self/cgroup').read().splitlines()
groups = {controllers: path for _, controllers, path in (line.split(':', 2) for line in lines)}
mem = pathlib.Path('/sys/fs/cgroup/memory' + groups['memory'])
cpu = pathlib.Path('/sys/fs/cgroup/cpu' + groups.get('cpu', groups.get('cpu,cpuacct')))
print(json.dumps({
    'memory_path': groups['memory'],
    'memory_limit': int((mem / 'memory.limit_in_bytes').read_text()),
    'cpu_quota': int((cpu / 'cpu.cfs_quota_us').read_text()),
    'cpu_period': int((cpu / 'cpu.cfs_period_us').read_text()),
}))
"""
READ_OTHERS_HOME = """
import getpass, os, stat
try:
    print(open({home!r} + '/secret.txt').read())
except PermissionError:
    print('denied', getpass.getuser(), oct(stat.S_IMODE(os.stat({home!r}).st_mode)))
"""


@pytest.fixture(scope="module")
def limits_hub():
    workdir = make_workdir()
    catalog = workdir / "catalog"
    shutil.copytree(REPO / "profiles", catalog)
    (catalog / "small.yaml").write_text(
        yaml.safe_dump(
            {
                "slug": "small",
                "display_name": "Small",
                "image": "pytorch",
                "cpu": {"guarantee": 0.5, "limit": 0.5},
                "memory": {"guarantee": "256Mi", "limit": f"{SMALL_MEMORY // 2**20}Mi"},
            }
        )
    )
    running = start_hub(workdir, catalog=str(catalog))
    yield running
    running.stop()


def test_limits_are_enforced_by_the_servers_cgroup(limits_hub):
    """The kernel runs inside a cgroup holding the profile's memory and CPU limits."""
    alice = limits_hub.user("alice")
    assert alice.start({"profile": "small"}).status_code in (201, 202)
    alice.wait_ready()
    try:
        facts = json.loads(
            run_code(
                alice,
                CGROUP_FACTS,
            )
        )
    finally:
        alice.stop()
    assert facts["memory_path"].startswith("/analysis-hub-")
    assert facts["memory_path"].endswith("/jupyter-alice")
    assert facts["memory_limit"] == SMALL_MEMORY
    assert facts["cpu_quota"] / facts["cpu_period"] == 0.5


def test_server_over_its_memory_limit_is_stopped_with_the_reason_shown(limits_hub):
    """Exceeding the memory limit stops the server, and the hub's home page says why."""
    bob = limits_hub.user("bob")
    assert bob.start({"profile": "small"}).status_code in (201, 202)
    bob.wait_ready()
    with pytest.raises(KernelError):
        run_code(bob, "hog = b'x' * (2 * 1024**3)", timeout=120)
    deadline = time.monotonic() + 60
    while "" in bob.model()["servers"] and time.monotonic() < deadline:
        time.sleep(1)
    assert "" not in bob.model()["servers"], "the server outlived its memory limit"
    home = bob.session.get(f"{limits_hub.url}/hub/home").text
    assert 'id="stop-reason"' in home
    assert "more than its memory limit of 700 MiB" in home


def test_users_cannot_read_each_others_homes(limits_hub):
    """Each hub user is its own Unix user whose 0700 home others can't open."""
    alice, carol = limits_hub.user("alice"), limits_hub.user("carol")
    for user in (alice, carol):
        assert user.start({"profile": "small"}).status_code in (201, 202)
    for user in (alice, carol):
        user.wait_ready()
    try:
        run_code(carol, "open('secret.txt', 'w').write('carol only')")
        carol_home = run_code(carol, "import os; print(os.environ['HOME'])").strip()
        outcome = run_code(
            alice,
            READ_OTHERS_HOME.format(home=carol_home),
        ).split()
    finally:
        for user in (alice, carol):
            user.stop()
    assert outcome == ["denied", "jupyter-alice", "0o700"]
