"""Containers kept apart on the docker backend, and pipeline runs in a container, on a real engine.

One hub (`analysis-hub up`, backend docker, pipelines on) for the module. Its
containers join the hub's own bridge network (created by the hub, with its
iptables chain; both removed at the end). alice and bob each run a pyspark
server; code in their kernels probes what it can connect to. A pipeline run
of data-team's notebook reports, from inside, its container and limits; the
test asks the engine which image that container was created from.

Network traffic: loopback, the hub's bridge network and the containers on
it; the host services the test starts listen on 127.0.0.1 and on the
bridge's gateway only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import HTTPServer, SimpleHTTPRequestHandler
from pathlib import Path

import nbformat
import pytest
from harness import REPO, start_hub
from kernels import CONTAINER_LIMITS, run_code
from notebooks import make_notebook

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dockerengine import TAGS_FILE, build_images, docker, hub_prefix, remove_hub_objects

pytestmark = pytest.mark.integration
GiB = 2**30
CLI = [sys.executable, "-m", "analysis_hub.cli", "pipelines"]

# Runs in a kernel: which of these addresses accept a TCP connection.
PROBE = """
import json, socket
def probe(host, port):
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect((host, port))
        return "open"
    except OSError as e:
        return type(e).__name__
    finally:
        s.close()
print(json.dumps({f"{h}:{p}": probe(h, p) for h, p in json.loads(%r)}))
"""
# Runs in bob's kernel: listeners on his container's loopback and on all its addresses.
LISTEN = """
import socket, subprocess, sys, time
for bind, port in (("127.0.0.1", 9999), ("0.0.0.0", 9998)):
    subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", bind],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(2)
print(socket.gethostbyname(socket.gethostname()))
"""
# A pipeline notebook: its container (hostname), limits (cgroup v1 or v2), user and folder.
INSIDE_THE_RUN = (
    CONTAINER_LIMITS
    + """
import socket
def probe(host, port):
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect((host, port))
        return "open"
    except OSError as e:
        return type(e).__name__
    finally:
        s.close()
print("FACTS " + json.dumps({"hostname": socket.gethostname(), "memory": int(memory[0]),
    "cpus": int(quota[0]) / int(period[0]), "uid": os.getuid(), "cwd": os.getcwd(),
    "no_new_privs": status["NoNewPrivs"].strip(), "cap_eff": status["CapEff"].strip(),
    "reach": {f"{h}:{p}": probe(h, p) for h, p in json.loads(targets)}}))
"""
)


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(address: str) -> tuple[HTTPServer, int]:
    server = HTTPServer((address, 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_port


@pytest.fixture(scope="module")
def tags():
    return build_images("pyspark")


@pytest.fixture(scope="module")
def hub(tags):
    running = start_hub(
        backend="docker",
        docker={"image_tags_file": str(TAGS_FILE)},
        culler={"enabled": False},
    )
    yield running
    running.stop()
    remove_hub_objects(running)


def hub_network(running) -> dict:
    return json.loads(docker("network", "inspect", f"{hub_prefix(running)}-net").stdout)[0]


def spawn(user) -> None:
    response = user.start({"profile": "pyspark"})
    assert response.status_code in (201, 202), response.text
    user.wait_ready(timeout=180)


def probe(user, targets: list[tuple[str, int]]) -> dict[str, str]:
    return json.loads(run_code(user, PROBE % json.dumps(targets)).strip().splitlines()[-1])


def test_containers_reach_neither_each_other_nor_host_services_but_the_hub_api(hub):
    """alice's container can't connect to ports bob's container listens on (its own address or its
    loopback), nor to a host service on 127.0.0.1, nor to a host service on the bridge's gateway,
    nor to bob's server port published on the host, nor to the proxy; only the hub API's port and
    the pipelines service's (where JupyterLab publishes, every call with a hub token) on the
    gateway answer. bob's listeners are up (he reaches them himself), and the hub reaches both servers:
    their APIs answer through the proxy."""
    network = hub_network(hub)
    gateway = network["IPAM"]["Config"][0]["Gateway"]
    assert network["Options"]["com.docker.network.bridge.enable_icc"] == "false"
    loopback_service, loopback_port = serve("127.0.0.1")
    gateway_service, gateway_port = serve(gateway)  # a host service on the address containers see
    alice, bob = hub.user("alice"), hub.user("bob")
    spawn(alice)
    spawn(bob)
    try:
        bob_address = run_code(bob, LISTEN).strip().splitlines()[-1]
        assert bob_address in {
            c["IPv4Address"].split("/")[0] for c in hub_network(hub)["Containers"].values()
        }
        published = bob.model()["servers"][""]
        bob_container = json.loads(docker("inspect", container_name(hub, bob)).stdout)[0]
        [binding] = bob_container["NetworkSettings"]["Ports"]["8888/tcp"]
        assert binding["HostIp"] == "127.0.0.1", "the server's port is published on host loopback only"
        assert published["url"] == "/user/bob/"
        hub_port = hub.settings["hub"]["internal_port"]

        mine = probe(bob, [("127.0.0.1", 9999), (bob_address, 9998)])
        assert mine == {"127.0.0.1:9999": "open", f"{bob_address}:9998": "open"}

        targets = [
            (bob_address, 9998),
            (bob_address, 9999),
            ("127.0.0.1", 9999),
            ("127.0.0.1", loopback_port),
            (gateway, loopback_port),
            (gateway, gateway_port),
            (gateway, int(binding["HostPort"])),
            (gateway, hub.settings["hub"]["port"]),
            (gateway, hub.settings["pipelines"]["port"]),
            (gateway, hub_port),
        ]
        seen = probe(alice, targets)
        opened = {target for target, result in seen.items() if result == "open"}
        assert opened == {f"{gateway}:{hub_port}", f"{gateway}:{hub.settings['pipelines']['port']}"}, seen

        for user in (alice, bob):
            response = user.server_api("/status")
            assert response.status_code == 200, response.text
    finally:
        alice.stop()
        bob.stop()
        loopback_service.shutdown()
        gateway_service.shutdown()


def container_name(running, user) -> str:
    return f"{hub_prefix(running)}-{user.name}"


def cli(running, user, *args: str, check: bool = True) -> str:
    env = {
        **os.environ,
        "ANALYSIS_HUB_PIPELINES_URL": f"{running.url}/services/pipelines/",
        "JUPYTERHUB_API_TOKEN": user.token,
    }
    result = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0 or not check, result.stdout + result.stderr
    return result.stdout


def test_a_pipeline_run_executes_in_a_container_of_the_versions_image_within_its_limits(hub, tags, tmp_path):
    """data-team's run of a pyspark version: from inside, the run sees the profile's memory and CPU
    limits, uid 1000 without privileges, the run folder as its working folder, and reaches no host
    service (on 127.0.0.1 or the gateway) but the hub API's port; the engine says its
    container (the run's hostname) was created from the pyspark image's tag, and removed; the run
    folder holds the output, the HTML and the log, and stays the service's own (0700)."""
    alice = hub.user("alice")
    path = tmp_path / "inside.ipynb"
    path.write_text(json.dumps(make_notebook(INSIDE_THE_RUN, parameters="targets = '[]'")))
    gateway = hub_network(hub)["IPAM"]["Config"][0]["Gateway"]
    loopback_service, loopback_port = serve("127.0.0.1")
    gateway_service, gateway_port = serve(gateway)
    hub_port = hub.settings["hub"]["internal_port"]
    targets = [
        ("127.0.0.1", loopback_port),
        (gateway, loopback_port),
        (gateway, gateway_port),
        (gateway, hub_port),
    ]
    since = str(int(time.time()) - 1)
    cli(
        hub,
        alice,
        "publish",
        str(path),
        "--team",
        "data-team",
        "--profile",
        "pyspark",
        "-m",
        "v1",
        "--deploy",
    )
    try:
        out = cli(hub, alice, "run", "data-team/inside", "--wait", "-p", f"targets={json.dumps(targets)}")
    finally:
        loopback_service.shutdown()
        gateway_service.shutdown()
    assert "succeeded" in out, out
    [run] = alice.api.get(f"{hub.url}/services/pipelines/api/pipelines/data-team/inside/runs").json()
    response = alice.api.get(f"{hub.url}/services/pipelines/api/runs/{run['id']}/output")
    output = nbformat.reads(response.text, as_version=4)
    printed = "".join(o.get("text", "") for c in output["cells"] for o in c.get("outputs", []))
    facts = json.loads(printed.split("FACTS ", 1)[1].splitlines()[0])
    hostname = facts.pop("hostname")
    assert facts == {
        "memory": 4 * GiB,
        "cpus": 2.0,
        "uid": 1000,
        "cwd": "/home/jovyan/run",
        "no_new_privs": "1",
        "cap_eff": "0000000000000000",
        "reach": {
            f"127.0.0.1:{loopback_port}": "ConnectionRefusedError",
            f"{gateway}:{loopback_port}": "ConnectionRefusedError",
            f"{gateway}:{gateway_port}": "ConnectionRefusedError",
            f"{gateway}:{hub_port}": "open",
        },
    }
    until = str(int(time.time()) + 1)
    events = docker(
        "events",
        "--since",
        since,
        "--until",
        until,
        "--filter",
        "type=container",
        "--filter",
        "event=create",
        "--format",
        "{{json .}}",
    ).stdout.splitlines()
    created = {e["Actor"]["ID"]: e["Actor"]["Attributes"] for e in map(json.loads, events)}
    [(container_id, attributes)] = [(i, a) for i, a in created.items() if i.startswith(hostname)]
    assert attributes["image"] == tags["pyspark"]
    assert attributes["analysis-hub.run"] == str(run["id"])
    assert docker("ps", "-aq", "--filter", f"id={container_id}").stdout.strip() == "", "container removed"

    run_dir = Path(hub.settings["data_dir"]) / "pipelines" / "runs" / str(run["id"])
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "input.ipynb",
        "log.txt",
        "output.html",
        "output.ipynb",
        "parameters.json",
    ]
    assert (run_dir.stat().st_mode & 0o777, run_dir.stat().st_uid) == (0o700, os.geteuid())


def test_a_run_past_its_timeout_is_killed_and_its_container_removed(hub, tmp_path):
    """A version deployed with a 20 s timeout whose notebook sleeps for 10 minutes: the run ends
    timed out, saying so; its container is gone; its folder keeps the log."""
    alice = hub.user("alice")
    path = tmp_path / "sleepy.ipynb"
    path.write_text(json.dumps(make_notebook("import time; time.sleep(600)")))
    cli(
        hub,
        alice,
        "publish",
        str(path),
        "--team",
        "data-team",
        "--profile",
        "pyspark",
        "-m",
        "v1",
        "--deploy",
    )
    cli(hub, alice, "deploy", "data-team/sleepy", "--timeout", "20")
    out = cli(hub, alice, "run", "data-team/sleepy", "--wait", check=False)
    [run] = alice.api.get(f"{hub.url}/services/pipelines/api/pipelines/data-team/sleepy/runs").json()
    assert (run["status"], run["reason"]) == ("timed_out", "stopped after the timeout of 20 s"), out
    name = f"{hub_prefix(hub)}-run-{run['id']}"
    assert docker("ps", "-aq", "--filter", f"name=^{name}$").stdout.strip() == "", "container removed"
    run_dir = Path(hub.settings["data_dir"]) / "pipelines" / "runs" / str(run["id"])
    assert (run_dir / "log.txt").is_file() and not (run_dir / "work").exists()


def test_the_hosts_rules_are_exact_and_installed_once(hub):
    """Setting the network up again (every spawn and run does) changes nothing: INPUT jumps to the
    hub's chain exactly through its two hooks, and the chain holds exactly its rules."""
    import docker as docker_sdk
    from analysis_hub.backends.docker.network import ensure_container_network
    from analysis_hub.backends.docker.translate import container_network, host_firewall

    prefix = hub_prefix(hub)
    ports = (hub.settings["hub"]["internal_port"], hub.settings["pipelines"]["port"])
    subnet = hub_network(hub)["IPAM"]["Config"][0]["Subnet"]
    for _ in range(2):
        ensure_container_network(docker_sdk.APIClient(version="auto"), prefix, None, ports)
    firewall = host_firewall(container_network(prefix, subnet), ports)

    def rules(chain: str) -> list[list[str]]:
        listed = subprocess.run(["iptables", "-S", chain], capture_output=True, text=True, check=True)
        return [line.split()[2:] for line in listed.stdout.splitlines() if line.startswith("-A ")]

    assert [rule for rule in rules("INPUT") if rule[-1] == prefix] == firewall.hooks
    assert rules(prefix) == firewall.rules


def test_jupyterlab_in_a_container_publishes_with_the_servers_own_token(hub):
    """The JupyterLab extension's server side, in alice's container: it reaches the pipelines
    service on the bridge's gateway with the server's own token (alice never handles one), sees
    her teams' pipelines only, and publishes a notebook by its path in the server; the service
    still refuses a team she is not in."""
    alice = hub.user("alice")
    spawn(alice)
    try:
        notebook = make_notebook("print(n)", parameters="n = 3")
        saved = alice.server_api("/contents/lab.ipynb", "PUT", json={"type": "notebook", "content": notebook})
        assert saved.status_code in (200, 201), saved.text
        base = f"{alice.base_url}{alice.server_prefix('')}analysis-hub"
        listed = alice.api.get(f"{base}/pipelines/api/pipelines")
        assert listed.status_code == 200, listed.text
        published = alice.api.post(
            f"{base}/publish",
            json={"path": "lab.ipynb", "team": "data-team", "name": "from-lab", "profile": "pyspark"},
        )
        assert published.status_code == 200, published.text
        described = alice.api.get(f"{hub.url}/services/pipelines/api/pipelines/data-team/from-lab").json()
        assert described["versions"][-1]["parameters"] == {"n": {"type": "int", "default": 3}}
        refused = alice.api.post(
            f"{base}/publish",
            json={"path": "lab.ipynb", "team": "gpu-team", "name": "x", "profile": "pyspark"},
        )
        assert refused.status_code == 403, refused.text
    finally:
        alice.stop()


def test_a_server_outlives_a_hub_restart_on_the_same_network(hub):
    """The hub restarts (an upgrade, a config change) while alice's container runs: it finds its
    network again, listens on the same gateway, and alice's server still answers through the
    proxy, checking her token with the hub API from inside the container."""
    alice = hub.user("alice")
    spawn(alice)
    try:
        gateway = hub_network(hub)["IPAM"]["Config"][0]["Gateway"]
        hub.stop(servers_too=False)
        hub.start()
        assert hub_network(hub)["IPAM"]["Config"][0]["Gateway"] == gateway
        alice = hub.user("alice")  # a new login and token, which the server must ask the hub about
        assert alice.server_api("/status").status_code == 200
        assert run_code(alice, "print(6 * 7)").strip().splitlines()[-1] == "42"
    finally:
        alice.stop()
