"""Benchmark 3: culling at scale, with the real jupyterhub-idle-culler and a stand-in spawner.

Contract: `run(plan)` measures analysis-hub and then a vanilla JupyterHub
and returns a JSON-ready dict; `format_table(result)` renders it. Per hub:

1. Before the hub starts, its database is filled (JupyterHub's own ORM)
   with `plan.users` users, of whom `plan.idle + plan.active` have a server
   recorded as running. The servers are STAND-INS (standin_spawner.py): one
   shared HTTP responder answers for all of them, nothing runs per server.
   The hub, the proxy (with one route per server), the database and the
   culler (run by the hub as a managed service, as configured: timeout
   `plan.timeout`, a sweep every `plan.every` s) are all real.
2. Once the hub answers, every server's activity is reported as "now"
   (T1) through the REST API, as servers report it; from then on only the
   `active` servers keep reporting, every `every / 2` s.
3. The benchmark waits until only the active servers are left (or
   T1 + timeout + every + `plan.grace_s`), then one more sweep, and checks
   through the REST API and the hub's request log: each idle server stopped
   by T1 + timeout + every (and by how much any was late), no active server
   stopped. The culler's sweeps are read from the hub's request log
   (hublog.py): the quiet sweeps before anything is idle (they cull nothing;
   the culler pages through the users that have a ready server, which the
   hub selects in SQL among all of them) and the sweep that culls the idle
   servers, with the duration of each stop request.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import hublog
import hubs
import sampling
from stats import fmt as _s
from stats import summarize

STANDIN_CONFIG = (
    "\n# The culling benchmark's stand-in spawner (tests/benchmarks/standin_spawner.py): no real servers.\n"
    "c.JupyterHub.spawner_class = 'standin_spawner.StandInSpawner'\n"
    "c.StandInSpawner.responder_port = {port}\n"
)


@dataclass(frozen=True)
class CullingPlan:
    users: int = 10_000
    idle: int = 1_000
    active: int = 100
    timeout: int = 120
    every: int = 10
    grace_s: float = 120

    def names(self) -> tuple[list[str], list[str], list[str]]:
        """(all users, users with an idle server, users with an active server)."""
        everyone = [f"user-{i:05d}" for i in range(self.users)]
        return everyone, everyone[: self.idle], everyone[self.idle : self.idle + self.active]


def fill_database(db_path: Path, plan: CullingPlan, responder_port: int) -> None:
    from jupyterhub import orm

    everyone, idle, active = plan.names()
    running = set(idle) | set(active)
    now = datetime.now(UTC).replace(tzinfo=None)  # JupyterHub stores naive UTC
    # The ORM stamps the schema through alembic, whose INFO lines would land in the report.
    logging.disable(logging.INFO)
    try:
        session = orm.new_session_factory(f"sqlite:///{db_path}")()
    finally:
        logging.disable(logging.NOTSET)
    for name in everyone:
        user = orm.User(name=name, created=now, last_activity=now)
        session.add(user)
        if name in running:
            server = orm.Server(proto="http", ip="127.0.0.1", port=responder_port, base_url=f"/user/{name}/")
            session.add(
                orm.Spawner(
                    user=user,
                    name="",
                    server=server,
                    state={"standin_running": True},
                    started=now,
                    last_activity=now,
                )
            )
    session.commit()
    session.close()


def _report_activity(api, hub_url: str, names: list[str], when: datetime) -> int:
    stamp = when.isoformat().replace("+00:00", "Z")
    failures = 0
    for name in names:
        r = api.post(
            f"{hub_url}/hub/api/users/{name}/activity",
            json={"last_activity": stamp, "servers": {"": {"last_activity": stamp}}},
            timeout=60,
        )
        failures += r.status_code != 200
    return failures


def _running_servers(admin, hub_url: str) -> set[str]:
    names, offset = set(), 0
    while True:
        r = admin.api.get(
            f"{hub_url}/hub/api/users",
            params={"state": "ready", "offset": offset, "limit": 200},
            headers={"Accept": "application/jupyterhub-pagination+json"},
            timeout=60,
        )
        r.raise_for_status()
        body = r.json()
        names.update(user["name"] for user in body["items"])
        if not body["_pagination"]["next"]:
            return names
        offset = body["_pagination"]["next"]["offset"]


def _culled_so_far(hub) -> set[str]:
    """Users whose server the culler has stopped, from the hub's request log."""
    logged = hublog.parse_requests(hub.log())
    return {owner for r in logged if r.client == hublog.CULLER and (owner := hublog.stopped_server_owner(r))}


def measure_hub(kind: str, plan: CullingPlan, log=print) -> dict:
    responder_port = hubs.harness.free_port()
    responder = subprocess.Popen(
        [sys.executable, str(hubs.BENCH_DIR / "standin_spawner.py"), str(responder_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, idle, active = plan.names()
    fill_s: list[float] = []

    def prepare(db_path: Path) -> None:
        began = time.monotonic()
        fill_database(db_path, plan, responder_port)
        fill_s.append(time.monotonic() - began)
        log(f"  culling {kind:<12} database: {plan.users} users, {len(idle) + len(active)} servers")

    options = {
        "culler": {"enabled": True, "timeout": plan.timeout, "every": plan.every},
        "extra_config": STANDIN_CONFIG.format(port=responder_port),
        "prepare": prepare,
        "ready_timeout": 600,  # the hub checks every recorded server at start
    }
    started = time.monotonic()
    try:
        if kind == hubs.ANALYSIS:
            hub = hubs.start_analysis_hub({"admin": hubs.ADMIN_PASSWORD}, **options)
        else:
            hub = hubs.start_vanilla_hub(["admin"], {}, **options)
        hub_start_s = time.monotonic() - started - sum(fill_s)
        log(f"  culling {kind:<12} hub answers {hub_start_s:.0f} s after its start")
        try:
            measured = _measure_running(hub, plan, idle, active, log)
        finally:
            hub.stop()
    finally:
        responder.kill()
        responder.wait(10)
    return {**measured, "database_fill_s": round(sum(fill_s), 1), "hub_start_s": round(hub_start_s, 1)}


def _measure_running(hub, plan, idle, active, log) -> dict:
    sampler = sampling.ProcessSampler({"hub": hub.hub_pid, "proxy": hubs.proxy_pid(hub)}).start()
    admin = hub.user("admin")
    t1 = datetime.now(UTC)
    t1_epoch = t1.timestamp()
    chunks = [idle[i::4] + active[i::4] for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        refresh_failures = sum(
            pool.map(lambda names: _report_activity(hub.user("admin").api, hub.url, names, t1), chunks)
        )
    refreshed_epoch = time.time()
    log(f"  culling {hub.kind:<12} every server's activity set to now in {refreshed_epoch - t1_epoch:.0f} s")

    stop_reporting = threading.Event()

    def keep_active():
        api = hub.user("admin").api
        while not stop_reporting.wait(plan.every / 2):
            _report_activity(api, hub.url, active, datetime.now(UTC))

    reporter = threading.Thread(target=keep_active, daemon=True)
    reporter.start()
    deadline_epoch = t1_epoch + plan.timeout + plan.every
    give_up = deadline_epoch + plan.grace_s
    # Progress is read from the hub's log, not its REST API: listing 1,100
    # servers every few seconds would load the single-threaded hub the
    # culler is being timed on (profiled: it took 40% of the hub's time).
    while time.time() < give_up and not set(idle) <= _culled_so_far(hub):
        time.sleep(2)
    all_idle_gone_epoch = time.time()
    time.sleep(plan.every + 2)  # one more sweep: active servers must survive it too
    running = _running_servers(admin, hub.url)
    stop_reporting.set()
    reporter.join(plan.every)
    resources = sampler.stop()

    requests_logged = hublog.parse_requests(hub.log())
    sweeps = hublog.culler_sweeps(requests_logged)
    stopped_at = {
        owner: r.finished
        for r in requests_logged
        if r.client == hublog.CULLER and (owner := hublog.stopped_server_owner(r))
    }
    idle_set, active_set = set(idle), set(active)
    quiet = [s for s in sweeps if s.started > refreshed_epoch and s.finished < t1_epoch + plan.timeout]
    culling = max(sweeps, key=lambda s: len(s.deletes), default=None)
    lateness = [stopped_at[name] - deadline_epoch for name in idle if name in stopped_at]
    culled_active = sorted(active_set & set(stopped_at))
    return {
        "activity_refresh_s": round(refreshed_epoch - t1_epoch, 1),
        "activity_refresh_failures": refresh_failures,
        "quiet_sweep_s": summarize(s.duration_s for s in quiet),
        "quiet_sweep_user_pages": quiet[0].user_pages if quiet else None,
        "culling_sweep_s": round(culling.duration_s, 2) if culling else None,
        "culling_sweep_deletes": len(culling.deletes) if culling else 0,
        "culling_sweep_delete_s": summarize(r.duration_s for r in culling.deletes) if culling else None,
        "culling_sweep_started_after_t1_s": round(culling.started - t1_epoch, 1) if culling else None,
        "sweeps_seen": len(sweeps),
        "idle_servers": len(idle),
        "idle_stopped": sum(name not in running for name in idle),
        "idle_stopped_by_deadline": sum(late <= 0 for late in lateness),
        "idle_latest_after_deadline_s": round(max(lateness), 2) if lateness else None,
        "idle_left_running": sorted(idle_set & running)[:10],
        "active_still_running": len(active_set & running),
        "active_culled_count": len(culled_active),
        "active_culled": culled_active[:10],
        "all_idle_gone_after_t1_s": round(all_idle_gone_epoch - t1_epoch, 1),
        "resources": resources,
        "hub_peak_rss_mib": round((sampling.peak_rss_bytes(hub.hub_pid) or 0) / 2**20, 1),
    }


def run(plan: CullingPlan, log=print) -> dict:
    result = {
        "plan": asdict(plan),
        "spawner": "STAND-IN (standin_spawner.py): servers are recorded as running, none runs",
    }
    for kind in (hubs.ANALYSIS, hubs.VANILLA):
        result[kind] = measure_hub(kind, plan, log)
        r = result[kind]
        log(
            f"  culling {kind:<12} sweep culling {r['culling_sweep_deletes']}: {_s(r['culling_sweep_s'])} s,"
            f" quiet sweep p50 {_s(r['quiet_sweep_s']['p50'])} s, active culled {r['active_culled_count']}"
        )
    return result


def format_table(result: dict) -> str:
    plan = result["plan"]
    lines = [
        f"culling: {plan['users']} users, {plan['idle']} idle + {plan['active']} active servers"
        f" (stand-in spawner: recorded as running, none runs); timeout {plan['timeout']} s,"
        f" a sweep every {plan['every']} s",
        f"{'hub':<13} {'quiet sweep p50':>15} {'culling sweep':>13} {'stops':>6} {'stop p50/p95':>13}"
        f" {'idle on time':>12} {'latest':>7} {'active culled':>13} {'hub RSS':>8}",
    ]
    for kind in (hubs.ANALYSIS, hubs.VANILLA):
        r = result.get(kind)
        if not r:
            continue
        stop = r["culling_sweep_delete_s"] or {}
        lines.append(
            f"{kind:<13} {_s(r['quiet_sweep_s']['p50']):>13} s {_s(r['culling_sweep_s']):>11} s"
            f" {r['culling_sweep_deletes']:>6} {_s(stop.get('p50'), 3):>6}/{_s(stop.get('p95'), 3)}"
            f" {r['idle_stopped_by_deadline']:>7}/{r['idle_servers']:<4}"
            f" {_s(r['idle_latest_after_deadline_s'], 1):>5} s"
            f" {r['active_culled_count']:>13} {r['hub_peak_rss_mib']:>4.0f} MiB"
        )
    return "\n".join(lines)
