"""Several servers per user, each culled on its own activity and its own chosen idle timeout.

One real hub for the module (`analysis-hub up`: JupyterHub, the proxy, and our
culler `analysis_hub.culling`, which is jupyterhub-idle-culler's sweep with
each server's own timeout), the local backend, and a copy of the repository's
catalog whose idle-timeout ranges are shortened to minutes (pyspark and
tensorflow 1 to 5 minutes; pyspark keeps a default of its own, 2 minutes,
as the shipped one has 30, tensorflow the site's). The culler sweeps every 10 s and
servers report their activity as often. The site's `culler.timeout` is long
(600 s), so every cull seen here comes from a server's own timeout.
"""

from __future__ import annotations

import re
import shutil
import threading
import time

import pytest
import yaml
from harness import REPO, make_workdir, start_hub
from kernels import run_code, start_kernel

pytestmark = pytest.mark.integration

EVERY = 10  # culler sweep and activity reports, seconds
SITE_TIMEOUT = 600
SHORT_RANGES = {
    "pyspark": {"min": "1m", "max": "5m", "default": "2m"},
    "tensorflow": {"min": "1m", "max": "5m"},
}
# A cull happens at the first sweep after the timeout: inactivity at cull time is under
# timeout + one sweep (+ one activity report's worth of lag, and slack for 2 busy cores).
ONE_SWEEP = 2 * EVERY + 5
SPARK_CODE = (
    "from pyspark.sql import SparkSession\n"
    "spark = SparkSession.builder.master('local[1]').getOrCreate()\n"
    "print(spark.range(1000).filter('id % 2 = 0').count())"
)


def short_catalog(workdir):
    """The repository's profiles with pyspark's and tensorflow's idle-timeout ranges shortened."""
    catalog = workdir / "profiles"
    shutil.copytree(REPO / "profiles", catalog)
    for slug, short_range in SHORT_RANGES.items():
        path = catalog / f"{slug}.yaml"
        profile = yaml.safe_load(path.read_text())
        profile["idle_timeout"] = short_range
        path.write_text(yaml.safe_dump(profile))
    return catalog


@pytest.fixture(scope="module")
def named_hub():
    workdir = make_workdir()
    running = start_hub(
        workdir,
        catalog=str(short_catalog(workdir)),
        culler={"enabled": True, "timeout": SITE_TIMEOUT, "every": EVERY},
        servers={"max_per_user": 2, "max_gpu_per_user": 1},
    )
    yield running
    running.stop()


def culled_after(hub, user: str, server: str) -> int:
    """Seconds of inactivity the culler logged when it stopped user/server ("": the default one)."""
    logged = f"{user}/{server}" if server else user  # as jupyterhub-idle-culler names servers
    found = re.findall(rf"Culling server {logged} \(inactive for (\d+):(\d+):(\d+)\)", hub.log())
    assert found, f"the culler logged no cull of {logged}"
    h, m, s = map(int, found[-1])
    return h * 3600 + m * 60 + s


def preselected(form: str, slug: str) -> list[str]:
    """The idle timeouts the spawn form preselects for a profile."""
    choices = form.split(f'name="idle_timeout.{slug}"')[1].split("</select>")[0]
    return re.findall(r'<option value="(\d*)" selected>', choices)


def wait_gone(user, server: str, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if server not in user.model()["servers"]:
            return
        time.sleep(1)
    raise AssertionError(f"{user.name}/{server} still runs after {within} s")


def test_two_named_servers_each_culled_on_its_own_activity_and_limits_refused(named_hub):
    """alice runs a pyspark server (from the form) and a tensorflow server (REST) at once, in one
    home; each runs code. Over the limits, a third named server and her default server get 400s
    naming the limit; an idle timeout outside the profile's range gets a 400 naming the range.
    Both have 1-minute idle timeouts: the pyspark server, idle, is culled within one sweep after
    it, while the tensorflow server, whose kernel is busy past its timeout, is kept."""
    alice = named_hub.user("alice")
    # "Add New Server" leads to the profile form, which offers each profile's idle timeouts.
    page = alice.session.get(f"{alice.base_url}/hub/spawn/alice/spark")
    assert page.status_code == 200
    # pyspark's own default is preselected; tensorflow has none, so the site's is.
    assert preselected(page.text, "pyspark") == ["120"] and preselected(page.text, "tensorflow") == [""]
    form = alice.spawn_from_form("spark", {"profile": "pyspark", "idle_timeout.pyspark": "60"})
    assert form.status_code == 302, form.text[:500]
    too_long = alice.start({"profile": "tensorflow", "idle_timeout": "2h"}, server="tf")
    assert too_long.status_code == 400
    refusal = "Idle timeout 2h is not offered for profile 'tensorflow': pick one from 1m to 5m."
    assert too_long.json()["message"] == refusal
    started = alice.start({"profile": "tensorflow", "idle_timeout": "1m"}, server="tf")
    assert started.status_code in (201, 202), started.text
    spark = alice.wait_ready(server="spark", timeout=600)
    tf = alice.wait_ready(server="tf", timeout=600)
    # Each server keeps its own profile and the timeout chosen for it, where the culler reads it.
    assert spark["user_options"] == {"profile": "pyspark", "idle_timeout": 60}
    assert tf["user_options"] == {"profile": "tensorflow", "idle_timeout": 60}

    # The home page lists both with profile, resources, idle timeout, state and last activity.
    home = alice.session.get(f"{alice.base_url}/hub/home").text
    assert "new-server-btn" in home
    rows = dict(re.findall(r'<tr data-server-name="(\w*)">(.*?)</tr>', home, re.S))
    spark_row = " ".join(rows["spark"].split())
    assert ">PySpark<" in spark_row and "up to 2 CPUs" in spark_row and ">1m<" in spark_row
    assert ">running<" in spark_row and re.search(r"\d{4}-\d\d-\d\dT", spark_row)
    assert ">TensorFlow<" in rows["tf"] and ">running<" in rows["tf"]

    assert run_code(alice, SPARK_CODE, server="spark", timeout=600).strip().endswith("500")
    shared = "open('from-tf.txt', 'w').write('one home'); import tensorflow as tf; print(tf.constant(2) * 21)"
    assert "42" in run_code(alice, shared, server="tf", timeout=300)
    assert run_code(alice, "print(open('from-tf.txt').read())", server="spark").strip() == "one home"

    third = alice.start({"profile": "tensorflow"}, server="third")
    assert third.status_code == 400 and "maximum of 2 named servers" in third.json()["message"]
    default = alice.start({"profile": "tensorflow"})
    assert default.status_code == 400
    message = default.json()["message"]
    assert (
        "servers.max_per_user = 2" in message
        and "'spark' (pyspark)" in message
        and "'tf' (tensorflow)" in message
    )

    # tensorflow: a kernel busy well past its own 1-minute timeout. pyspark: nothing more.
    busy_for = 60 + 2 * ONE_SWEEP
    kernel = start_kernel(alice, server="tf")
    worker = threading.Thread(
        target=run_code,
        args=(alice, f"import time; time.sleep({busy_for})", kernel),
        kwargs={"timeout": busy_for + 120, "server": "tf"},
        daemon=True,
    )
    worker.start()
    wait_gone(alice, "spark", within=60 + 3 * ONE_SWEEP)
    assert 60 <= culled_after(named_hub, "alice", "spark") < 60 + ONE_SWEEP
    # Until the busy kernel finishes (past tf's own minute), tf stays.
    while worker.is_alive():
        assert "tf" in alice.model()["servers"], "a named server with a busy kernel was culled"
        time.sleep(5)
    assert "Culling server alice/tf" not in named_hub.log()
    # A culled named server is stopped, not removed: alice can start it again by name.
    listed = alice.api.get(alice.url("/users/alice?include_stopped_servers=1")).json()["servers"]
    assert "spark" in listed and not listed["spark"]["ready"]


def test_servers_with_one_and_three_minute_timeouts_are_culled_at_their_times(named_hub):
    """bob's two idle servers, with 1- and 3-minute idle timeouts (the site's is 10 minutes), are
    each culled at the first sweep after their own timeout: the 1-minute one while the 3-minute
    one still runs, and each with its logged inactivity between its timeout and one sweep later.
    carol's pyspark server, started meanwhile without a choice, gets pyspark's own default
    (2 minutes here), not the site's, and is culled at the first sweep after it."""
    bob, carol = named_hub.user("bob"), named_hub.user("carol")
    for server, timeout in (("one", "1m"), ("three", "3m")):
        r = bob.start({"profile": "tensorflow", "idle_timeout": timeout}, server=server)
        assert r.status_code in (201, 202), r.text
    assert carol.start({"profile": "pyspark"}).status_code in (201, 202)
    for server in ("one", "three"):
        bob.wait_ready(server=server, timeout=600)
    assert carol.wait_ready(timeout=600)["user_options"] == {"profile": "pyspark", "idle_timeout": 120}
    wait_gone(bob, "one", within=60 + 3 * ONE_SWEEP)
    assert "three" in bob.model()["servers"], "the 3-minute server went with the 1-minute one"
    wait_gone(carol, "", within=120 + 3 * ONE_SWEEP)
    wait_gone(bob, "three", within=180 + 3 * ONE_SWEEP)
    assert 60 <= culled_after(named_hub, "bob", "one") < 60 + ONE_SWEEP
    assert 120 <= culled_after(named_hub, "carol", "") < 120 + ONE_SWEEP
    assert 180 <= culled_after(named_hub, "bob", "three") < 180 + ONE_SWEEP
