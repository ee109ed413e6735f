"""The chart installed in a real Kubernetes, and users' servers on it, as an admin and analysts see them.

One install for the module (`chart_install.install`): the real Zero to JupyterHub chart and
ours, the hub image's KubeSpawner with its ServiceAccount's token, the proxy in its own pod,
the pipelines Deployment on PostgreSQL, our DNS, kube-proxy and volume provisioner beside
the cluster (tests/kubecluster.py). Nothing here is a stand-in; the GPU is absent, so the
GPU profile is proven only as far as the scheduler's refusal.
"""

from __future__ import annotations

import re
import time

import requests
from chart_install import CULL_EVERY, TEAM
from hubclient import HubUser
from kernels import run_code, start_kernel

SPARK_COUNT = """
from pyspark.sql import SparkSession
spark = SparkSession.builder.master("local[1]").getOrCreate()
print(spark.range(1000).count())
"""


def ready_pods(chart, selector: str) -> list[str]:
    return [
        pod["metadata"]["name"]
        for pod in chart.pods(selector)
        if any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))
    ]


def user_pod(chart, user: str, server: str = "") -> dict:
    pods = chart.pods(f"hub.jupyter.org/username={user},hub.jupyter.org/servername={server}")
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    return pods[0]


def wait_gone(chart, selector: str, seconds: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if not chart.pods(selector):
            return time.monotonic() - started
        time.sleep(2)
    raise AssertionError(f"pods {selector} still there after {seconds:.0f} s")


def test_hub_proxy_and_pipelines_pods_become_ready_and_the_admin_logs_in(chart, admin):
    """`helm install` of our chart over z2jh 4.4.0: the hub, proxy and pipelines pods are Ready,
    and the admin logs in through proxy-public with the initial password from its Secret."""
    assert ready_pods(chart, "component=hub")
    assert ready_pods(chart, "component=proxy")
    assert ready_pods(chart, "app.kubernetes.io/component=pipelines")
    assert admin.model()["admin"] is True
    # The pipelines service answers through the proxy, registered with the hub as z2jh does.
    r = admin.api.get(f"{chart.url}/services/pipelines/api/pipelines")
    assert r.status_code == 200, r.text[:300]


def test_pyspark_from_the_form_and_a_named_tensorflow_server_beside_it(chart, admin):
    """The admin spawns pyspark from the form and a tensorflow named server beside it: JupyterLab
    answers through the proxy, Spark counts in the pyspark kernel, TensorFlow runs in the other;
    the spawns log no unhandled user_options. Stopping deletes the pods and keeps the home claim."""
    form = admin.session.get(f"{chart.url}/hub/spawn/admin")
    assert form.status_code == 200 and "pyspark" in form.text and "tensorflow" in form.text
    xsrf = admin.session.cookies.get("_xsrf", "")
    posted = admin.session.post(
        f"{chart.url}/hub/spawn/admin", data={"profile": "pyspark", "_xsrf": xsrf}, allow_redirects=False
    )
    assert posted.status_code == 302, posted.text[:500]
    started = admin.start({"profile": "tensorflow"}, server="tf")
    assert started.status_code in (201, 202), started.text
    spark_server = admin.wait_ready(timeout=600)
    admin.wait_ready(server="tf", timeout=600)
    assert spark_server["user_options"]["profile"] == "pyspark"

    lab = admin.session.get(f"{chart.url}/user/admin/lab")
    assert lab.status_code == 200 and "JupyterLab" in lab.text
    assert run_code(admin, SPARK_COUNT, timeout=600).strip().endswith("1000")
    assert "42" in run_code(admin, "import tensorflow as tf; print(int(tf.constant(2) * 21))", server="tf")
    pod = user_pod(chart, "admin")
    assert pod["spec"]["containers"][0]["image"] == chart.tags["pyspark"]
    assert "Received unhandled user_options" not in chart.logs("hub")

    admin.stop()
    admin.api.delete(admin.url("/users/admin/servers/tf"), json={"remove": True})
    wait_gone(chart, "hub.jupyter.org/username=admin", 120)
    claims = chart.cluster.get("pvc", "-n", chart.namespace)["items"]
    assert "claim-admin" in {c["metadata"]["name"] for c in claims}


def test_the_teams_claim_is_mounted_only_in_its_members_pods(chart):
    """alice (data-team) gets the team's claim at ~/teams/data-team and writes there; bob's pod
    has no such volume at all, whatever he asks for."""
    alice = HubUser(chart.url, "alice", "alice-password")
    bob = HubUser(chart.url, "bob", "bob-password")
    for user in (alice, bob):
        r = user.start({"profile": "tensorflow"})
        assert r.status_code in (201, 202), r.text
    for user in (alice, bob):
        user.wait_ready(timeout=600)
    claim = f"analysis-hub-team-{TEAM}"
    claims_of = {
        user: {
            v["persistentVolumeClaim"]["claimName"]
            for v in user_pod(chart, user)["spec"]["volumes"]
            if "persistentVolumeClaim" in v
        }
        for user in ("alice", "bob")
    }
    assert claim in claims_of["alice"] and claim not in claims_of["bob"]
    written = run_code(alice, f"open('teams/{TEAM}/note.txt', 'w').write('shared'); print('ok')")
    assert written.strip() == "ok"
    probe = f"import os; print(os.path.exists('teams/{TEAM}'))"
    assert run_code(bob, probe).strip() == "False"
    for user in (alice, bob):
        user.stop()


def test_an_idle_server_is_culled_its_pod_deleted_and_the_cull_counted(chart, admin):
    """A tensorflow server with a one-minute idle timeout and no activity is stopped by the
    culler (z2jh's service running our module): its pod is deleted and
    analysis_hub_culls_total{reason="idle"} counts it on the hub's /hub/metrics."""
    r = admin.start({"profile": "tensorflow", "idle_timeout": "1m"}, server="quick")
    assert r.status_code in (201, 202), r.text
    admin.wait_ready(server="quick", timeout=600)
    selector = "hub.jupyter.org/username=admin,hub.jupyter.org/servername=quick"
    assert chart.pods(selector)
    # One minute idle, plus a sweep, plus the report interval, plus the pod's deletion.
    wait_gone(chart, selector, 60 + 3 * CULL_EVERY + 90)
    scrape = admin.api.post(admin.url("/users/admin/tokens"), json={"scopes": ["read:metrics"]}).json()
    headers = {"Authorization": f"token {scrape['token']}"}
    # The pod goes while the culler's DELETE is still answering; the hub counts it as it logs it.
    deadline = time.monotonic() + 30
    while True:
        metrics = requests.get(f"{chart.url}/hub/metrics", headers=headers, timeout=10)
        counted = re.search(r'^analysis_hub_culls_total\{reason="idle"\} (\S+)$', metrics.text, re.M)
        if counted or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert counted and float(counted[1]) >= 1, metrics.text[-2000:]
    admin.api.delete(admin.url("/users/admin/servers/quick"), json={"remove": True})


def test_the_gpu_profiles_pod_stays_pending_and_the_spawn_page_says_why(chart, admin):
    """No node has an NVIDIA GPU (nor the GPU pool's label): the pytorch pod stays Pending, and the
    spawn's progress (what the spawn page shows) carries the scheduler's reason. The image is
    never pulled."""
    r = admin.start({"profile": "pytorch"}, server="gpu")
    assert r.status_code in (201, 202), r.text
    messages = []
    deadline = time.monotonic() + 120
    with admin.api.get(admin.url("/users/admin/servers/gpu/progress"), stream=True, timeout=150) as stream:
        for line in stream.iter_lines(chunk_size=1, decode_unicode=True):
            if line and line.startswith("data:"):
                messages.append(line)
                if "nodes are available" in line or time.monotonic() > deadline:
                    break
    # The scheduler stops at the first filter a node fails: here the GPU pool's node selector.
    reason = next((m for m in messages if "0/1 nodes are available" in m), "")
    assert "node affinity/selector" in reason or "nvidia.com/gpu" in reason, messages[-5:]
    pod = user_pod(chart, "admin", "gpu")
    assert pod["status"]["phase"] == "Pending"
    admin.api.delete(admin.url("/users/admin/servers/gpu"), json={"remove": True})
    wait_gone(chart, "hub.jupyter.org/username=admin,hub.jupyter.org/servername=gpu", 120)


SPARK_ON_KUBERNETES = """
import socket, time
from pyspark.sql import SparkSession
spark = (
    SparkSession.builder.config("spark.executor.instances", "2")
    # Two small executors beside the suite's other pods on a 2-CPU node.
    .config("spark.kubernetes.executor.request.cores", "100m")
    .config("spark.executor.memory", "512m")
    .getOrCreate()
)
tracker = spark.sparkContext._jsc.sc().statusTracker()
deadline = time.time() + 300
while len(tracker.getExecutorInfos()) < 3 and time.time() < deadline:  # the driver and 2 executors
    time.sleep(2)
hosts = spark.sparkContext.parallelize(range(8), 8).map(lambda _: socket.gethostname()).distinct().collect()
print(spark.sparkContext.master, spark.range(1000000).count(), len(set(hosts)))
"""


def test_spark_on_kubernetes_starts_two_executor_pods_that_go_with_the_session_and_the_server(chart, admin):
    """In a pyspark server, a SparkSession uses the k8s:// master the image's start hook writes:
    the chart's Spark ServiceAccount starts 2 executor pods from the pyspark image, a range is
    counted with tasks on both, the executors are deleted by `spark.stop()`, and the ones of a
    second session are deleted with the server's pod (their owner)."""
    r = admin.start({"profile": "pyspark"}, server="spark")
    assert r.status_code in (201, 202), r.text
    admin.wait_ready(server="spark", timeout=600)
    executors = "spark-role=executor"
    kernel = start_kernel(admin, server="spark")
    printed = run_code(admin, SPARK_ON_KUBERNETES, kernel, timeout=600, server="spark").split()
    assert printed[0].startswith("k8s://https://") and printed[1:] == ["1000000", "2"], printed
    pods = chart.pods(executors)
    assert len(pods) == 2 and {p["spec"]["serviceAccountName"] for p in pods} == {"analysis-hub-spark"}
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {chart.tags["pyspark"]}
    run_code(admin, "spark.stop()", kernel, server="spark")
    wait_gone(chart, executors, 120)

    run_code(admin, SPARK_ON_KUBERNETES, kernel, timeout=600, server="spark")
    assert len(chart.pods(executors)) == 2
    admin.api.delete(admin.url("/users/admin/servers/spark"))
    wait_gone(chart, executors, 180)
