"""jupyterhub-idle-culler#88's shape at scale: many users whose default server is in use and whose
named server is idle. Every idle named server must be culled in the sweep after its timeout, and
no default server.

The servers are STAND-INS (tests/benchmarks/standin_spawner.py): recorded as running in the
hub's database before it starts, answered by one shared HTTP responder, nothing runs per
server; a machine with 2 cores can't run 400 JupyterLab servers. The hub, the proxy and its
routes, the database, our culler (`analysis_hub.culling`, jupyterhub-idle-culler's sweep) and
the activity reports through the REST API are all real.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

import pytest
from harness import REPO, free_port, make_workdir, start_hub

pytestmark = pytest.mark.integration

BENCH_DIR = REPO / "tests" / "benchmarks"
USERS = [f"user-{i:03d}" for i in range(150)]
NAMED = "analytics"
TIMEOUT, EVERY = 60, 10
STANDIN_CONFIG = (
    "c.JupyterHub.spawner_class = 'standin_spawner.StandInSpawner'\n"
    "c.StandInSpawner.responder_port = {port}\n"
)


def fill_database(db_path, responder_port: int) -> None:
    """Each user with a running default server and a running named server (stand-ins)."""
    from jupyterhub import orm

    now = datetime.now(UTC).replace(tzinfo=None)  # JupyterHub stores naive UTC
    logging.disable(logging.INFO)  # alembic's schema stamp
    try:
        session = orm.new_session_factory(f"sqlite:///{db_path}")()
    finally:
        logging.disable(logging.NOTSET)
    for name in USERS:
        user = orm.User(name=name, created=now, last_activity=now)
        session.add(user)
        for server_name in ("", NAMED):
            prefix = f"/user/{name}/" + (f"{server_name}/" if server_name else "")
            server = orm.Server(proto="http", ip="127.0.0.1", port=responder_port, base_url=prefix)
            session.add(
                orm.Spawner(
                    user=user,
                    name=server_name,
                    server=server,
                    state={"standin_running": True},
                    started=now,
                    last_activity=now,
                )
            )
    session.commit()
    session.close()


def report(api, url: str, servers: list[str], when: datetime) -> None:
    stamp = when.isoformat().replace("+00:00", "Z")
    for name in USERS:
        r = api.post(
            f"{url}/hub/api/users/{name}/activity",
            json={"last_activity": stamp, "servers": {s: {"last_activity": stamp} for s in servers}},
            timeout=60,
        )
        assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def crowded_hub():
    port = free_port()
    responder = subprocess.Popen([sys.executable, str(BENCH_DIR / "standin_spawner.py"), str(port)])
    workdir = make_workdir()
    (workdir / "data" / "hub").mkdir(parents=True, mode=0o700)
    fill_database(workdir / "data" / "hub" / "jupyterhub.sqlite", port)
    (workdir / "jupyterhub_config.py").write_text(STANDIN_CONFIG.format(port=port))
    pythonpath = os.pathsep.join(p for p in (str(BENCH_DIR), os.environ.get("PYTHONPATH", "")) if p)
    try:
        hub = start_hub(
            workdir,
            env={"PYTHONPATH": pythonpath},
            ready_timeout=300,
            hub={"log_level": "INFO"},
            auth={"admins": ["admin"], "users": USERS, "groups": {}},
            culler={"enabled": True, "timeout": TIMEOUT, "every": EVERY},
        )
        yield hub
        hub.stop(servers_too=False)
    finally:
        responder.kill()
        responder.wait(10)


def test_idle_named_servers_of_busy_users_are_all_culled_in_one_sweep(crowded_hub):
    """150 users, each with a default server in use (reporting activity) and an idle named server:
    all 150 named servers are culled at the first sweep after their timeout (logged inactivity
    under timeout + one sweep), and no default server is."""
    admin = crowded_hub.user("admin")
    report(admin.api, crowded_hub.url, ["", NAMED], datetime.now(UTC))
    stop = threading.Event()

    def keep_defaults_busy():
        while not stop.wait(EVERY / 2):
            report(admin.api, crowded_hub.url, [""], datetime.now(UTC))

    reporter = threading.Thread(target=keep_defaults_busy, daemon=True)
    reporter.start()
    culled: dict[str, int] = {}
    pattern = re.compile(rf"Culling server (user-\d+)/{NAMED} \(inactive for (\d+):(\d+):(\d+)\)")
    deadline = time.monotonic() + TIMEOUT + 6 * EVERY + 60
    try:
        while time.monotonic() < deadline and len(culled) < len(USERS):
            time.sleep(2)
            for user, h, m, s in pattern.findall(crowded_hub.log()):
                culled[user] = int(h) * 3600 + int(m) * 60 + int(s)
        time.sleep(EVERY + 2)  # one more sweep: the busy default servers must survive it too
    finally:
        stop.set()
        reporter.join(EVERY * 3)
    assert sorted(culled) == USERS, f"named servers not culled: {sorted(set(USERS) - set(culled))[:10]}"
    late = {user: s for user, s in culled.items() if not TIMEOUT <= s < TIMEOUT + 2 * EVERY + 5}
    assert not late, (
        f"culled outside one sweep after the timeout (inactive s): {dict(list(late.items())[:5])}"
    )
    log = crowded_hub.log()
    assert not re.search(r"Culling server user-\d+ \(", log), "a default server in use was culled"
    listed = admin.api.get(f"{crowded_hub.url}/hub/api/users", params={"state": "ready"}).json()
    running = {u["name"]: sorted(u["servers"]) for u in listed if u["name"] in USERS}
    assert running == {name: [""] for name in USERS}
