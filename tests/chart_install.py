"""The umbrella chart installed in a real cluster, as an admin installs it (I/O).

`install(cluster, postgres)` does what the README's "Kubernetes: install with Helm" asks of
an admin, on the tests' cluster (`kubecluster.KubeCluster`):
- builds the images the install runs (hub, proxy, pyspark, tensorflow; content tags make
  this a no-op when they exist) and imports them into the node once;
- renders helm/analysis-hub with the real Zero to JupyterHub chart that Chart.lock pins
  (../shared/charts/jupyterhub-<version>.tgz, put where `helm dependency build` would put
  it, in a copy of the chart), with the chart's values plus `test_values(...)`: the local
  images, a ClusterIP proxy (no load balancer here), no user scheduler or placeholders (they
  need images of their own), a team folder, Spark executors on Kubernetes, a short culler
  sweep and a tensorflow profile that may be culled after a minute;
- creates what the README says to create outside Helm (the namespace, the pipelines
  database's Secret pointing at a real PostgreSQL on the host's bridge address), applies
  every manifest, and waits until the hub, proxy and pipelines Deployments are Ready.
Returns an `Install`: the namespace, the URL of `proxy-public`, the admin's initial password
read from its Secret, and helpers to read pods and logs. `uninstall()` deletes the namespace.

The GPU image (pytorch, 5.5 GB) is never built into the cluster: there is no GPU here, so its
profile's pod stays Pending whatever its image.
"""

from __future__ import annotations

import base64
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests
import yaml
from dockerengine import build_images
from kubecluster import STORAGE_CLASS, KubeCluster

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "helm" / "analysis-hub"
SHARED_CHARTS = REPO.parent / "shared" / "charts"
NAMESPACE = "analysis-hub"
RELEASE = "analysis-hub"
IMAGES = ("hub", "proxy", "pyspark", "tensorflow")
TEAM = "data-team"
APPROVERS = "ml-leads"  # bob: approves data-team's gates from outside the team
CULL_EVERY = 15  # seconds between the culler's sweeps (servers report activity as often)


@dataclass
class Install:
    cluster: KubeCluster
    namespace: str
    url: str
    admin_password: str
    tags: dict[str, str]

    @property
    def api(self) -> str:
        """The pipelines service's REST API through proxy-public (what `workflow_runs.api` calls)."""
        return f"{self.url}/services/pipelines/api"

    def pods(self, selector: str) -> list[dict]:
        return self.cluster.get("pods", "-n", self.namespace, "-l", selector)["items"]

    def logs(self, deployment: str) -> str:
        result = self.cluster.kubectl(
            "logs", "-n", self.namespace, f"deployment/{deployment}", "--tail=400", check=False
        )
        return result.stdout + result.stderr

    def hub_exec(self, *command: str, input: str | None = None) -> str:
        return self.cluster.kubectl(
            "exec", "-i", "-n", self.namespace, "deployment/hub", "--", *command, input=input
        ).stdout

    def uninstall(self) -> None:
        self.cluster.kubectl(
            "delete", "namespace", self.namespace, "--wait=true", "--timeout=180s", check=False, timeout=200
        )


def chart_version() -> str:
    lock = yaml.safe_load((CHART / "Chart.lock").read_text())
    [dependency] = [d for d in lock["dependencies"] if d["name"] == "jupyterhub"]
    return dependency["version"]


def render(values: dict, namespace: str = NAMESPACE) -> list[dict]:
    """The umbrella chart with its real dependency, rendered by Helm's engine (helm-python-sdk)."""
    import helm_python as helm

    packaged = SHARED_CHARTS / f"jupyterhub-{chart_version()}.tgz"
    with tempfile.TemporaryDirectory(prefix="chart-") as tmp:
        copy = Path(tmp) / "analysis-hub"
        shutil.copytree(CHART, copy, ignore=shutil.ignore_patterns("charts"))
        (copy / "charts").mkdir()
        shutil.copy2(packaged, copy / "charts" / packaged.name)
        with helm.Chart.load(str(copy)) as chart:
            rendered = chart.render(values=values, name=RELEASE, namespace=namespace)
    manifests = []
    for path in sorted(rendered):
        if path.endswith(".yaml"):
            manifests.extend(doc for doc in yaml.safe_load_all(rendered[path]) if doc)
    return manifests


def image(reference: str) -> dict:
    name, tag = reference.rsplit(":", 1)
    return {"name": name, "tag": tag, "pullPolicy": "IfNotPresent"}


def test_values(tags: dict[str, str]) -> dict:
    """The test layer over the chart's values (the README's layering: chart -> ... -> this)."""
    return {
        "images": {
            "pyspark": tags["pyspark"],
            "tensorflow": tags["tensorflow"],
            # Never imported: the GPU profile's pod must stay Pending before any pull.
            "pytorch": "analysis-hub/pytorch:not-on-this-cluster",
        },
        "imagePuller": {"enabled": False},
        "settings": {
            "auth": {
                "type": "builtin",
                "admins": ["admin"],
                "users": ["alice", "bob"],
                "groups": {TEAM: ["alice"], APPROVERS: ["bob"]},
            },
        },
        # Any class name: the tests' provisioner binds every claim (ReadWriteMany included).
        "teams": {"folders": {TEAM: {}}, "size": "1Gi", "storageClassName": STORAGE_CLASS},
        "spark": {"kubernetesExecutors": True},
        # Small guarantees: the node has 2 CPUs for every pod of the suite. A minute's idle
        # timeout for tensorflow, so that a cull is seen within the test.
        "catalog": {
            "pyspark": {"cpu": {"guarantee": 0.1}, "memory": {"guarantee": "512Mi"}},
            "tensorflow": {
                "cpu": {"guarantee": 0.1},
                "memory": {"guarantee": "512Mi"},
                "idle_timeout": {"min": "1m", "max": "2h"},
            },
        },
        "pipelines": {"storage": {"capacity": "1Gi"}, "runFolder": {"size": "1Gi"}},
        "jupyterhub": {
            "hub": {"image": image(tags["hub"])},
            "proxy": {
                "service": {"type": "ClusterIP"},
                "chp": {"image": image(tags["proxy"])},
            },
            "singleuser": {
                "image": image(tags["pyspark"]),
                "storage": {"capacity": "1Gi"},
                # Pods start in seconds here; an image's first start under load takes longer.
                "startTimeout": 600,
            },
            "scheduling": {"userScheduler": {"enabled": False}, "userPlaceholder": {"enabled": False}},
            "cull": {"every": CULL_EVERY},
        },
    }


def install(cluster: KubeCluster, database_url: str, namespace: str = NAMESPACE) -> Install:
    started = time.monotonic()
    tags = build_images(*IMAGES)
    cluster.import_images(*tags.values())
    manifests = render(test_values(tags), namespace)
    # A kept developer's cluster may still hold an earlier, failed install.
    cluster.kubectl("delete", "namespace", namespace, "--ignore-not-found", "--timeout=180s", timeout=200)
    cluster.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}])
    cluster.apply([database_secret(database_url)], namespace)
    cluster.apply(manifests, namespace)
    for deployment in ("hub", "proxy", "analysis-hub-pipelines"):
        cluster.kubectl(
            "rollout", "status", "-n", namespace, f"deployment/{deployment}", "--timeout=600s", timeout=620
        )
    service = cluster.get("service", "-n", namespace, "proxy-public")
    url = f"http://{service['spec']['clusterIP']}:{service['spec']['ports'][0]['port']}"
    secret = cluster.get("secret", "-n", namespace, "analysis-hub-initial-admin")
    password = base64.b64decode(secret["data"]["password"]).decode()
    wait_for_hub(url)
    print(f"chart installed and Ready in {time.monotonic() - started:.0f} s", flush=True)
    return Install(cluster, namespace, url, password, tags)


def database_url_for_pods(server, cluster: KubeCluster, name: str) -> str:
    """A new database of the tests' PostgreSQL, as the cluster's pods reach it (the bridge)."""
    url = server.database(name)
    return url.replace("@127.0.0.1:", f"@{cluster.bridge_ip}:") if cluster.bridge_ip else url


def database_secret(url: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "analysis-hub-pipelines-database"},
        "stringData": {"url": url},
    }


def wait_for_hub(url: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/hub/api/", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(1)
    raise AssertionError(f"the hub did not answer at {url}/hub/api/ through proxy-public")
