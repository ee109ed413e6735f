"""The kubernetes backend's wiring: KubeSpawner pods, and pipeline steps as Jobs (see `backends`).

Contract: `BACKEND` sets `CatalogKubeSpawner` and its traits (pure), has
nothing to check before `up` (the chart and the cluster decide), and gives
the pipelines service the Job executor (`job_executor.py`): a step is a
batch/v1 Job in the cluster, its pod built as the profile's server pod,
never a process in the service's pod. `cluster_facts(settings)` is the one
place the cluster's facts are read from settings, for the spawner and the
pipelines alike.
"""

from __future__ import annotations

from ...images import JOVYAN_GID, JOVYAN_UID, discover_images, hadoop_images
from ...kernels import kernel_display_name
from ...teams import member_teams, team_claim_problems
from .. import Backend
from .translate import ClusterFacts


def cluster_facts(settings) -> ClusterFacts:
    k8s = settings.kubernetes
    images = discover_images(settings.images_dir)
    return ClusterFacts(
        images=dict(k8s.images),
        hadoop_images=hadoop_images(images),
        team_claims=dict(k8s.team_claims),
        teams=member_teams(settings.teams, set(settings.teams)),
        kernel_names={name: kernel_display_name(name, images) for name in images},
        hadoop_configmap=k8s.hadoop_configmap or None,
        krb5_conf=k8s.krb5_conf,
        spark_service_account=k8s.spark_service_account or None,
        image_pull_policy=k8s.image_pull_policy,
        image_pull_secrets=tuple(k8s.image_pull_secrets),
    )


class KubernetesBackend(Backend):
    name = "kubernetes"

    def apply(self, settings, c, host) -> None:
        c.JupyterHub.spawner_class = "analysis_hub.backends.kubernetes.spawner.CatalogKubeSpawner"
        spawner = c.CatalogKubeSpawner
        spawner.cluster = cluster_facts(settings)
        c.CatalogSpawnerMixin.known_images = list(self.known_images(settings))
        # The catalog's form and profiles, never KubeSpawner's list (z2jh's singleuser.profileList).
        spawner.profile_list = []
        # Secure by default: the images' jovyan user, no way to gain privileges,
        # no Linux capabilities, and no Kubernetes API token inside users' pods.
        spawner.uid = JOVYAN_UID
        spawner.fs_gid = JOVYAN_GID
        spawner.allow_privilege_escalation = False
        spawner.container_security_context = {"capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True}
        spawner.automount_service_account_token = False

    def check(self, settings) -> list[str]:
        return team_claim_problems(settings.teams, settings.kubernetes.team_claims)

    def start_timeout(self, settings) -> int:
        return settings.kubernetes.start_timeout

    def pipelines_url(self, settings, prefix) -> str:
        # z2jh's proxy Service; user pods may reach the proxy's HTTP port.
        return f"http://proxy-public{prefix}"

    def executor(self, settings):
        from .job_executor import job_executor

        return job_executor(settings, cluster_facts(settings))

    def known_images(self, settings) -> tuple[str, ...]:
        # A pod can only run an image the cluster can pull: one kubernetes.images names.
        return tuple(sorted(settings.kubernetes.images))

    def machine_gpus(self, settings) -> None:
        return None  # GPU nodes are the cluster's to schedule


BACKEND = KubernetesBackend()
