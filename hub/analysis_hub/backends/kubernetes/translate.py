"""A resolved profile -> what KubeSpawner and a Job's pod run: pure translations.

Contract:
- `pod_override(resolved, cluster)` is a pod's whole share of the profile:
  image reference, CPU and memory bounds, the GPU limit, node selector,
  tolerations, env, and volumes (a memory-backed /dev/shm for GPU profiles,
  sized by the catalog's rule `Resources.shared_memory`; the Hadoop client
  configuration where the image uses it), in plain lists, the shape of a pod
  spec. A pipeline step's Job builds its pod from it (`jobs.py`).
- `server_traits(resolved, cluster)` is the same for a user's server as
  KubeSpawner traits: volumes and mounts keyed by name and mount path (the
  shape the Zero to JupyterHub chart gives the home PVC, so they merge with
  it), and the server's command naming the image's kernel. The spawner sets
  them on top of its configured traits at each start, as the docker backend
  sets DockerSpawner's (`spawner.py`); the form, the check and the choice
  are the catalog's, shared by every backend.
- `ClusterFacts` says what the cluster provides (image references, the
  Hadoop ConfigMap, Spark on Kubernetes, the teams' claims); it comes from
  settings and is passed in, so all of this stays pure and unit-testable by
  dict equality.
- `team_volumes(folders, cluster)` is what a member's pod adds for its team
  folders, whatever the profile: each team's ReadWriteMany claim at
  /home/jovyan/teams/<team>, read-only where flagged. Membership is per user,
  so the spawner adds these to the pod itself; a team's pipeline run pod gets
  its team's (`jobs.run_pod_settings`).
- Spark on Kubernetes (a service account named in settings) is the only case
  where a user pod gets an API token: the pyspark kernel is the Spark driver
  and creates its executor pods. Every other pod runs without one (set by
  `wiring.KubernetesBackend.apply`).

Tolerations are a list, which replaces the configured one rather than merging,
so every pod repeats the chart's own user-pod tolerations.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...catalog import ResolvedProfile
from ...images import HADOOP_CONF_DIR, HOME
from ...kernels import container_command, container_kernel_env
from ...teams import TeamFolder, unix_group_name

GPU_RESOURCE = "nvidia.com/gpu"
# Fixed driver and block-manager ports (the pyspark image's start hook reads these), so the
# chart's NetworkPolicy can open exactly them to executor pods.
SPARK_DRIVER_PORT = 29413
SPARK_BLOCKMANAGER_PORT = 29414
# The label the chart's Spark NetworkPolicy selects driver pods by.
SPARK_DRIVER_LABEL = "analysis-hub/spark-driver"
# What the Zero to JupyterHub chart puts on user pods (scheduling.userPods.tolerations).
CHART_USER_TOLERATIONS = (
    {"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"},
    {"key": "hub.jupyter.org_dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"},
)


@dataclass(frozen=True)
class ClusterFacts:
    images: dict[str, str]  # catalog image name -> pullable reference (registry/name:tag or @digest)
    hadoop_configmap: str | None = None
    hadoop_images: frozenset[str] = frozenset()  # images that are Hadoop clients (images.py)
    krb5_conf: bool = False  # the Hadoop ConfigMap also holds krb5.conf, for /etc/krb5.conf
    spark_service_account: str | None = None  # set: pyspark pods start Spark executors as pods
    team_claims: dict[str, str] = field(default_factory=dict)  # team -> its PVC (the chart's)
    teams: tuple[TeamFolder, ...] = ()  # every team folder the settings declare (pipeline runs: one)
    kernel_names: dict[str, str] = field(default_factory=dict)  # image -> its kernel's display name
    # Pipeline run pods' container image pull policy and pull secrets (servers get z2jh's own).
    image_pull_policy: str | None = "IfNotPresent"
    image_pull_secrets: tuple[str, ...] = ()


def image_reference(image: str, cluster: ClusterFacts) -> str:
    try:
        return cluster.images[image]
    except KeyError:
        known = ", ".join(sorted(cluster.images)) or "none"
        raise ValueError(f"kubernetes.images has no reference for image {image!r} (known: {known})") from None


def pod_override(resolved: ResolvedProfile, cluster: ClusterFacts) -> dict:
    r = resolved.resources
    env = dict(resolved.env)
    volumes, mounts = [], []
    if r.shared_memory:
        # PyTorch's DataLoader workers share tensors through /dev/shm; the 64 MiB default is too small.
        volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": str(r.shared_memory)}})
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    spark_pod = {}
    if resolved.image in cluster.hadoop_images:
        if cluster.hadoop_configmap:
            volumes.append({"name": "hadoop-conf", "configMap": {"name": cluster.hadoop_configmap}})
            mounts.append({"name": "hadoop-conf", "mountPath": HADOOP_CONF_DIR, "readOnly": True})
            env["HADOOP_CONF_DIR"] = HADOOP_CONF_DIR
            if cluster.krb5_conf:
                # subPath: only this one file replaces the image's /etc/krb5.conf.
                mounts.append(
                    {
                        "name": "hadoop-conf",
                        "mountPath": "/etc/krb5.conf",
                        "subPath": "krb5.conf",
                        "readOnly": True,
                    }
                )
        if cluster.spark_service_account:
            env.update(
                SPARK_KUBERNETES_EXECUTORS="true",
                SPARK_KUBERNETES_SERVICE_ACCOUNT=cluster.spark_service_account,
                SPARK_DRIVER_PORT=str(SPARK_DRIVER_PORT),
                SPARK_BLOCKMANAGER_PORT=str(SPARK_BLOCKMANAGER_PORT),
            )
            # The driver needs its API token to create executor pods (the Role allows only that).
            spark_pod = {
                "service_account": cluster.spark_service_account,
                "automount_service_account_token": True,
                "extra_labels": {SPARK_DRIVER_LABEL: "true"},
            }
    return {
        "image": image_reference(resolved.image, cluster),
        "cpu_guarantee": r.cpu_guarantee,
        "cpu_limit": r.cpu_limit,
        "mem_guarantee": r.memory_guarantee,
        "mem_limit": r.memory_limit,
        "extra_resource_limits": {GPU_RESOURCE: r.gpus} if r.gpus else {},
        "node_selector": dict(resolved.node_selector),
        "tolerations": [
            *CHART_USER_TOLERATIONS,
            *(t.model_dump(exclude_none=True) for t in resolved.tolerations),
        ],
        "environment": env,
        "volumes": volumes,
        "volume_mounts": mounts,
        **spark_pod,
    }


def team_volumes(folders: tuple[TeamFolder, ...], cluster: ClusterFacts) -> tuple[list[dict], list[dict]]:
    """The pod's volumes and the server container's mounts for the user's team folders."""
    volumes, mounts = [], []
    for folder in folders:
        claim = cluster.team_claims.get(folder.team)
        if claim is None:
            continue  # settings refuse a team without a claim; nothing to mount
        name = unix_group_name(folder.team)
        source = {"claimName": claim, **({"readOnly": True} if folder.read_only else {})}
        volumes.append({"name": name, "persistentVolumeClaim": source})
        mounts.append(
            {
                "name": name,
                "mountPath": f"{HOME}/{folder.home_path}",
                **({"readOnly": True} if folder.read_only else {}),
            }
        )
    return volumes, mounts


def server_traits(resolved: ResolvedProfile, cluster: ClusterFacts) -> dict:
    """`pod_override`'s settings as KubeSpawner traits (see the docstring)."""
    pod = pod_override(resolved, cluster)
    kernel_name = cluster.kernel_names.get(resolved.image, "")
    override = {
        **pod,
        "volumes": {v["name"]: v for v in pod["volumes"]},
        "volume_mounts": {m["mountPath"]: m for m in pod["volume_mounts"]},
    }
    if kernel_name:
        override["environment"] = {**pod["environment"], **container_kernel_env(kernel_name)}
        override["cmd"] = container_command()
    return override
