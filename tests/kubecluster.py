"""A real Kubernetes for the tests: ../shared/k8s's cluster, made whole for an in-cluster install (I/O).

`KubeCluster.find()` gives the cluster the tests use, or None with the reason:
- where `../shared/k8s/cluster.sh` exists and we are root, a cluster of our own
  under TEST_ROOT/k8s, started by it (about 10 s), plus what a Zero to
  JupyterHub install needs and that cluster lacks (its README, "Not there"):
  - **names for Services**: Debian's `dnsmasq` on the bridge address answers
    `<service>.<namespace>.svc.cluster.local` from the Services (a hosts file
    rewritten when they change), and the kubelet is restarted once with that
    address as its `clusterDNS`, so pods resolve `hub`, `proxy-api`, `pipelines`;
  - **Service routing**: `kube-proxy` in iptables mode (`--masquerade-all`: replies
    between pods on one bridge come back through the host's NAT), and endpoints for
    the `kubernetes` Service (the API server's bridge address), so in-cluster clients
    (KubeSpawner in the hub pod, Spark drivers) reach the API by its Service;
  - **forwarding**: Docker's FORWARD policy is DROP and the bridge's traffic passes
    iptables (br_netfilter), so our own chain accepts the cluster bridge's packets;
  - **volumes**: a default StorageClass (`test-hostpath`, bound at first use) and a
    small provisioner (a thread) that binds every pending claim to a `hostPath`
    PersistentVolume under ROOT/volumes (world-writable, as a fresh NFS
    export would be), copies the source claim's folder for a claim with a
    `dataSource` (what CSI cloning does for repairs), and deletes released volumes;
- anywhere else, the cluster `KUBECONFIG` names (kind, k3d), taken as it is: it
  has its own DNS, proxy and provisioner. Without either, None says why.

`import_images(*refs)` loads local Docker images into the node's containerd once
per test run (those already there are skipped; pods use `imagePullPolicy:
IfNotPresent`). `stop()` leaves nothing behind: dnsmasq and kube-proxy (and its
`KUBE-*` chains, `kube-proxy --cleanup`), our iptables chain, then `cluster.sh
down` (processes, mounts, the bridge, kernel settings) and the folder. A cluster
whose test process was killed before its teardown is stopped by the next start.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import yaml
from dockerengine import TEST_ROOT, docker_command

REPO = Path(__file__).resolve().parent.parent
CLUSTER_SH = REPO.parent / "shared" / "k8s" / "cluster.sh"
ROOT = TEST_ROOT / "k8s"
OWNER = "owner.pid"
SUBNET = "10.244.91.0/24"
API_PORT = 16491
CHAIN = "ANALYSIS-HUB-K8S"
DOMAIN = "cluster.local"
# Set (to anything) on a developer's machine: the cluster outlives the test run and the next
# run adopts it, images and all. CI never sets it.
KEEP_ENV = "ANALYSIS_HUB_TEST_KEEP_CLUSTER"
STORAGE_CLASS = "test-hostpath"
ROUTE_LOCALNET = "net.ipv4.conf.all.route_localnet"


class KubeCluster:
    def __init__(self, kubeconfig: Path, kubectl: str, root: Path | None = None, bridge_ip: str = ""):
        self.kubeconfig = kubeconfig
        self.kubectl_path = kubectl
        self.root = root  # None: someone else's cluster, which we neither start nor stop
        self.bridge_ip = bridge_ip
        self._addons: _Addons | None = None

    # --- finding and starting ---------------------------------------------------------------
    @classmethod
    def find(cls) -> tuple[KubeCluster | None, str]:
        if CLUSTER_SH.exists() and os.geteuid() == 0:
            return cls._start_shared(), ""
        kubeconfig = os.environ.get("KUBECONFIG")
        kubectl = shutil.which("kubectl")
        if kubeconfig and kubectl:
            return cls(Path(kubeconfig), kubectl), ""
        why = f"no cluster: {CLUSTER_SH} needs root" if CLUSTER_SH.exists() else f"no {CLUSTER_SH}"
        return None, f"{why}, and no KUBECONFIG with kubectl on PATH (kind, k3d)"

    @classmethod
    def _start_shared(cls) -> KubeCluster:
        if os.environ.get(KEEP_ENV) and (ROOT / "env").exists():
            kept = cls._adopt()
            if kept:
                return kept
        stop_abandoned()
        ROOT.mkdir(parents=True, exist_ok=True)
        (ROOT / OWNER).write_text(str(os.getpid()))
        started = time.monotonic()
        _run([str(CLUSTER_SH), "up", str(ROOT), "--subnet", SUBNET, "--port", str(API_PORT)], timeout=240)
        env = _read_env(ROOT / "env")
        cluster = cls(ROOT / "kubeconfig", f"{env['K8S_BIN']}/kubectl", ROOT, env["BRIDGE_IP"])
        try:
            cluster._complete(env["K8S_BIN"])
        except BaseException:
            cluster.stop()
            raise
        print(f"cluster ready in {time.monotonic() - started:.0f} s", flush=True)
        return cluster

    @classmethod
    def _adopt(cls) -> KubeCluster | None:
        """A developer's kept cluster (KEEP_ENV): its images are imported already."""
        env = _read_env(ROOT / "env")
        cluster = cls(ROOT / "kubeconfig", f"{env['K8S_BIN']}/kubectl", ROOT, env["BRIDGE_IP"])
        if not cluster.node_ready():
            return None
        (ROOT / OWNER).write_text(str(os.getpid()))
        cluster._addons = _Addons(cluster)
        cluster._addons.start()
        return cluster

    def _complete(self, bin_dir: str) -> None:
        """What an in-cluster install needs beyond cluster.sh's cluster (the module docstring)."""
        root, bridge = self.root, bridge_name(self.root)
        (root / "route_localnet.before").write_text(_sysctl(ROUTE_LOCALNET))
        _iptables("-N", CHAIN)
        _iptables("-A", CHAIN, "-i", bridge, "-j", "ACCEPT")
        _iptables("-A", CHAIN, "-o", bridge, "-j", "ACCEPT")
        _iptables("-I", "FORWARD", "1", "-j", CHAIN)
        (root / "dns").mkdir(exist_ok=True)
        (root / "dns" / "hosts").write_text("")
        _start(
            root, "dnsmasq", "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
            "--no-hosts", f"--listen-address={self.bridge_ip}", "--bind-interfaces", "--port=53",
            f"--addn-hosts={root / 'dns' / 'hosts'}", f"--local=/{DOMAIN}/", "--user=root",
            "--log-facility=-",
        )  # fmt: skip
        self._restart_kubelet_with_dns(bin_dir)
        _start(
            root, "kube-proxy", f"{bin_dir}/kube-proxy", f"--kubeconfig={self.kubeconfig}",
            "--proxy-mode=iptables", f"--cluster-cidr={SUBNET}", "--hostname-override=node-1",
            "--masquerade-all", "--iptables-localhost-nodeports=false", "--conntrack-max-per-core=0",
            "--conntrack-tcp-timeout-established=0", "--conntrack-tcp-timeout-close-wait=0",
            f"--metrics-bind-address=127.0.0.1:{API_PORT + 400}",
            f"--healthz-bind-address=127.0.0.1:{API_PORT + 500}",
        )  # fmt: skip
        self.apply([*api_server_endpoints(self.bridge_ip, API_PORT), storage_class()])
        self._addons = _Addons(self)
        self._addons.start()

    def _restart_kubelet_with_dns(self, bin_dir: str) -> None:
        """cluster.sh's kubelet has no clusterDNS; pods get ours once it restarts with one."""
        root = self.root
        pid = int((root / "pids" / "kubelet").read_text())
        command = Path(f"/proc/{pid}/cmdline").read_text().split("\0")[:-1]
        _stop_pid(pid)
        config_path = root / "kubelet" / "config.yaml"
        config = yaml.safe_load(config_path.read_text())
        config.update(clusterDNS=[self.bridge_ip], clusterDomain=DOMAIN)
        config_path.write_text(yaml.safe_dump(config))
        _start(root, "kubelet", *command, env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"})
        _wait(lambda: self.node_ready(), 90, "the node after the kubelet's restart")
        restore_sysctls(root)  # the kubelet sets its kernel settings again at start

    def node_ready(self) -> bool:
        result = self.kubectl("get", "node", "node-1", "-o", "json", check=False)
        if result.returncode != 0:
            return False
        conditions = json.loads(result.stdout)["status"].get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    # --- using it ---------------------------------------------------------------------------
    def kubectl(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120):
        command = [self.kubectl_path, f"--kubeconfig={self.kubeconfig}", *args]
        result = subprocess.run(command, input=input, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr[-3000:]}")
        return result

    def get(self, *args: str) -> dict:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def apply(self, manifests: list[dict], namespace: str | None = None) -> None:
        scope = ["--namespace", namespace] if namespace else []
        document = yaml.safe_dump_all(manifests)
        self.kubectl("apply", "--server-side", "--force-conflicts", *scope, "-f", "-", input=document)

    def import_images(self, *references: str) -> None:
        """Local Docker images into the node's containerd, each once (skipped when present)."""
        if self.root is None:
            return  # someone else's cluster pulls from its registry or was loaded by its owner
        ctr = [
            str(Path(self.kubectl_path).parent / "ctr"),
            "--address",
            str(self.root / "containerd" / "containerd.sock"),
        ]
        listed = subprocess.run([*ctr, "-n", "k8s.io", "images", "ls", "-q"], capture_output=True, text=True)
        present = set(listed.stdout.split())
        for reference in references:
            if _normalized(reference) in present:
                continue
            started = time.monotonic()
            save = subprocess.Popen([docker_command(), "save", reference], stdout=subprocess.PIPE)
            subprocess.run([*ctr, "-n", "k8s.io", "images", "import", "-"], stdin=save.stdout, check=True,
                           capture_output=True, timeout=900)  # fmt: skip
            if save.wait() != 0:
                raise AssertionError(f"docker save {reference} failed")
            print(f"imported {reference} in {time.monotonic() - started:.0f} s", flush=True)

    def stop(self) -> None:
        if self.root is None:
            return
        if self._addons:
            self._addons.stop()
        if not os.environ.get(KEEP_ENV):
            stop_cluster(self.root)


# --- the pieces -------------------------------------------------------------------------------
def api_server_endpoints(address: str, port: int) -> list[dict]:
    """The `kubernetes` Service's endpoints (cluster.sh runs the API server without its reconciler)."""
    labels = {"kubernetes.io/service-name": "kubernetes", "endpointslice.kubernetes.io/managed-by": "tests"}
    return [
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": labels},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        }
    ]


def storage_class() -> dict:
    """The default class, bound when a pod first uses a claim (as cloud and CSI classes are): the
    scheduler then waits for our provisioner instead of failing the pod on an unbound claim."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": "analysis-hub-tests/hostpath",
        "volumeBindingMode": "WaitForFirstConsumer",
        "reclaimPolicy": "Delete",
    }


def dns_hosts(services: list[dict]) -> str:
    """A hosts file naming each Service's ClusterIP the way cluster DNS would."""
    lines = []
    for service in services:
        ip = service["spec"].get("clusterIP")
        if not ip or ip == "None":
            continue
        name, namespace = service["metadata"]["name"], service["metadata"]["namespace"]
        base = f"{name}.{namespace}.svc"
        lines.append(f"{ip} {base}.{DOMAIN} {base} {name}.{namespace}")
    return "\n".join(sorted(lines)) + "\n"


def host_path_volume(claim: dict, path: Path) -> dict:
    """A hostPath PersistentVolume bound in advance to `claim` (no provisioner runs here)."""
    meta, spec = claim["metadata"], claim["spec"]
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": volume_name(claim), "labels": {"analysis-hub-tests/provisioned": "true"}},
        "spec": {
            "capacity": {"storage": spec.get("resources", {}).get("requests", {}).get("storage", "1Gi")},
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": spec.get("storageClassName") or "",
            "volumeMode": spec.get("volumeMode", "Filesystem"),
            "hostPath": {"path": str(path), "type": "DirectoryOrCreate"},
            "claimRef": {"namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]},
        },
    }


def volume_name(claim: dict) -> str:
    meta = claim["metadata"]
    return (
        "pv-" + hashlib.sha256(f"{meta['namespace']}/{meta['name']}/{meta['uid']}".encode()).hexdigest()[:16]
    )


class _Addons(threading.Thread):
    """The provisioner and the DNS feed: every second, what changed among claims and Services."""

    def __init__(self, cluster: KubeCluster):
        super().__init__(daemon=True, name="kube-addons")
        self.cluster = cluster
        self.volumes = cluster.root / "volumes"
        self.hosts = cluster.root / "dns" / "hosts"
        self._done = threading.Event()
        self.errors: list[str] = []
        self.refresh()  # the first names before any pod needs them

    def run(self) -> None:
        while not self._done.wait(1.0):
            try:
                self.refresh()
            except Exception as e:  # a busy API server: try again next second
                self.errors.append(repr(e))

    def refresh(self) -> None:
        state = self.cluster.get("persistentvolumeclaims,services,persistentvolumes", "--all-namespaces")
        items = state["items"]
        services = [i for i in items if i["kind"] == "Service"]
        hosts = dns_hosts(services)
        if hosts != self.hosts.read_text():
            self.hosts.write_text(hosts)
            _signal(self.cluster.root, "dnsmasq", signal.SIGHUP)
        claims = {
            f"{i['metadata']['namespace']}/{i['metadata']['name']}": i
            for i in items
            if i["kind"] == "PersistentVolumeClaim"
        }
        for claim in claims.values():
            if claim["status"].get("phase") == "Pending" and not claim["spec"].get("volumeName"):
                self.provision(claim, claims)
        for volume in (i for i in items if i["kind"] == "PersistentVolume"):
            if volume["status"].get("phase") == "Released" and "analysis-hub-tests/provisioned" in volume[
                "metadata"
            ].get("labels", {}):
                self.cluster.kubectl("delete", "pv", volume["metadata"]["name"], "--wait=false", check=False)
                shutil.rmtree(volume["spec"]["hostPath"]["path"], ignore_errors=True)

    def provision(self, claim: dict, claims: dict[str, dict]) -> None:
        path = self.volumes / volume_name(claim)
        source = claim["spec"].get("dataSource") or {}
        if source.get("kind") == "PersistentVolumeClaim":
            origin = claims.get(f"{claim['metadata']['namespace']}/{source['name']}")
            if origin is None or not origin["spec"].get("volumeName"):
                return  # CSI cloning needs a bound source; so does ours
            shutil.copytree(
                self.volumes / origin["spec"]["volumeName"], path, symlinks=True, dirs_exist_ok=True
            )
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o777)
        self.cluster.apply([host_path_volume(claim, path)])

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=5)


# --- processes, iptables and the leftovers of killed runs -------------------------------------
def bridge_name(root: Path) -> str:
    """cluster.sh's name for ROOT's bridge: k8s + the first 8 hex digits of md5(ROOT + newline)."""
    return "k8s" + hashlib.md5(f"{root}\n".encode()).hexdigest()[:8]


def stop_cluster(root: Path) -> None:
    for name in ("kube-proxy", "dnsmasq"):
        _signal(root, name, signal.SIGTERM, wait=True)
    env = _read_env(root / "env") if (root / "env").exists() else {}
    if env.get("K8S_BIN"):
        subprocess.run([f"{env['K8S_BIN']}/kube-proxy", "--cleanup"], capture_output=True, timeout=60)
    while _iptables("-D", "FORWARD", "-j", CHAIN, check=False) == 0:
        pass
    for hook in ("INPUT", "OUTPUT"):  # what kube-proxy's --cleanup leaves (localhost NodePorts)
        _iptables("-D", hook, "-j", "KUBE-FIREWALL", check=False)
    _iptables("-F", "KUBE-FIREWALL", check=False)
    _iptables("-X", "KUBE-FIREWALL", check=False)
    _iptables("-F", CHAIN, check=False)
    _iptables("-X", CHAIN, check=False)
    _run([str(CLUSTER_SH), "down", str(root)], timeout=180)
    if (root / "route_localnet.before").exists():  # kube-proxy may set it; the machine's value back
        subprocess.run(["sysctl", "-qw", f"{ROUTE_LOCALNET}={(root / 'route_localnet.before').read_text()}"])
    shutil.rmtree(root, ignore_errors=True)


def stop_abandoned() -> None:
    """A cluster whose test process died before its teardown: stopped before ours starts."""
    if not (ROOT / "pids").exists():
        shutil.rmtree(ROOT, ignore_errors=True)
        return
    try:
        os.kill(int((ROOT / OWNER).read_text()), 0)
        raise RuntimeError(f"a cluster under {ROOT} belongs to a test run still going; one per machine")
    except (OSError, ValueError):
        stop_cluster(ROOT)


def restore_sysctls(root: Path) -> None:
    keys = ("vm.overcommit_memory", "kernel.panic", "kernel.panic_on_oops", "vm.panic_on_oom")
    values = (root / "sysctls.before").read_text().split()
    for key, value in zip(keys, values, strict=True):
        subprocess.run(["sysctl", "-qw", f"{key}={value}"], check=False)


def _normalized(reference: str) -> str:
    first = reference.split("/")[0]
    if "/" not in reference or ("." not in first and ":" not in first and first != "localhost"):
        reference = f"docker.io/{reference if '/' in reference else 'library/' + reference}"
    return reference


def _sysctl(key: str) -> str:
    return subprocess.run(["sysctl", "-n", key], capture_output=True, text=True).stdout.strip()


def _read_env(path: Path) -> dict[str, str]:
    pairs = (
        line.removeprefix("export ").split("=", 1) for line in path.read_text().splitlines() if "=" in line
    )
    return dict(pairs)


def _run(command: list[str], timeout: float) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-3000:]}")


def _iptables(*args: str, check: bool = True) -> int:
    result = subprocess.run(["iptables", "-w", *args], capture_output=True, text=True)
    if check and result.returncode != 0 and "already exists" not in result.stderr:
        raise RuntimeError(f"iptables {' '.join(args)}: {result.stderr}")
    return result.returncode


def _start(root: Path, name: str, *command: str, env: dict | None = None) -> None:
    with open(root / "logs" / f"{name}.log", "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=log, env=env, start_new_session=True)
    (root / "pids" / name).write_text(str(process.pid))


def _signal(root: Path, name: str, signum: int, wait: bool = False) -> None:
    pid_file = root / "pids" / name
    try:
        pid = int(pid_file.read_text())
    except (OSError, ValueError):
        return
    if wait:
        _stop_pid(pid, signum)
        pid_file.unlink(missing_ok=True)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _stop_pid(pid: int, signum: int = signal.SIGTERM) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        return
    for _ in range(40):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not Path(f"/proc/{pid}").exists() or _zombie(pid):
            return
        time.sleep(0.25)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _wait(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(1)
    raise RuntimeError(f"{what} did not come up in {seconds:.0f} s")
