"""From the chart's values to user pods: the hub's configuration under Zero to JupyterHub.

The chain a cluster would run, minus the cluster: our chart's templates
rendered by the real Helm engine (the example install: OIDC, a GPU pool, a
Kerberized Hadoop cluster, Spark on Kubernetes) give the settings file and
the catalog the hub mounts; `analysis_hub.backends.kubernetes.z2jh.configure` applies
them on top of a config holding what z2jh's own jupyterhub_config.py sets
(z2jh's file itself can't be downloaded here); the real KubeSpawner then builds
each pod with `get_pod_manifest()` (a dummy kubeconfig; no API server exists
here), and each pod is validated against the Kubernetes 1.32 schemas.
"""

from __future__ import annotations

import kubernetes_validate
import pytest
import yaml
from analysis_hub.backends.kubernetes.spawner import CatalogKubeSpawner
from analysis_hub.backends.kubernetes.translate import (
    CHART_USER_TOLERATIONS,
    SPARK_DRIVER_LABEL,
    ClusterFacts,
)
from analysis_hub.backends.kubernetes.z2jh import apply_under_z2jh, configure
from analysis_hub.config import PIPELINES_ACCESS, pipelines_oauth
from analysis_hub.settings import Settings, SettingsError
from jupyterhub.services.service import Service
from kube_support import (
    CHART,
    HUB,
    K8S_VERSION,
    example_values,
    find,
    hub_user,
    load_request,
    merge_values,
    offered_profiles,
    pod_as_dict,
    render_chart,
    use_dummy_kubeconfig,
)
from tornado import web
from traitlets.config import Config
from unit_support import REPO

GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
Z2JH_CRYPT_KEYS = ["ab" * 32]
HOME = "volume-{user_server}"
# The endpoints an OIDC discovery would find; given, so no network is needed.
OIDC_ENDPOINTS = {
    "authorize_url": "https://login.example.com/realms/company/protocol/openid-connect/auth",
    "token_url": "https://login.example.com/realms/company/protocol/openid-connect/token",
    "userinfo_url": "https://login.example.com/realms/company/protocol/openid-connect/userinfo",
}


Z2JH_TOKEN = "generated-by-z2jh"


def z2jh_config(values: dict | None = None) -> Config:
    """What z2jh 4.4.0's jupyterhub_config.py sets before it runs jupyterhub_config.d/*.py.

    Its `hub.services` and `hub.loadRoles` from the chart's values (the defaults unless
    given) as z2jh's file does it: each entry named by its key, `apiToken` dropped, and the
    token z2jh keeps in its Secret set as `api_token`.
    """
    hub_values = (values or chart_defaults())["jupyterhub"]["hub"]
    c = Config()
    c.JupyterHub.services = [
        {**{k: v for k, v in service.items() if k != "apiToken"}, "name": name, "api_token": Z2JH_TOKEN}
        for name, service in (hub_values.get("services") or {}).items()
        if service is not None
    ]
    c.JupyterHub.load_roles = [
        {"name": name, **role} for name, role in (hub_values.get("loadRoles") or {}).items()
    ]
    c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
    c.JupyterHub.authenticator_class = "dummy"  # the chart's hub.config default
    c.KubeSpawner.profile_list = []  # singleuser.profileList
    c.KubeSpawner.tolerations = list(CHART_USER_TOLERATIONS)  # scheduling.userPods.tolerations
    c.KubeSpawner.environment = {"COMPANY_PROXY": "http://proxy.example.com:3128"}  # singleuser.extraEnv
    c.KubeSpawner.uid = 1000
    c.KubeSpawner.fs_gid = 100
    # singleuser.storage.type: dynamic, as dicts (a list override would replace them).
    c.KubeSpawner.storage_pvc_ensure = True
    c.KubeSpawner.volumes = {HOME: {"name": HOME, "persistentVolumeClaim": {"claimName": "{pvc_name}"}}}
    c.KubeSpawner.volume_mounts = {HOME: {"mountPath": "/home/jovyan", "name": HOME}}
    c.CryptKeeper.keys = list(Z2JH_CRYPT_KEYS)
    return c


def chart_defaults() -> dict:
    return yaml.safe_load((CHART / "values.yaml").read_text())


def assert_home_is_kept(pod: dict) -> None:
    """The user's home PVC survives the profile's own volumes (a lost home would be lost work)."""
    home = next(v for v in pod["spec"]["volumes"] if v["name"] == "volume-ana")
    assert home["persistentVolumeClaim"]["claimName"] == "claim-ana"
    mounts = {m["mountPath"]: m["name"] for m in pod["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["/home/jovyan"] == "volume-ana"


@pytest.fixture
def hub_files(tmp_path, monkeypatch):
    """The example install's settings file and catalog as the hub pod would see them mounted."""
    use_dummy_kubeconfig(tmp_path, monkeypatch)
    values = merge_values(
        example_values("common.yaml", "production.yaml"),
        {"settings": {"auth": {"oidc": OIDC_ENDPOINTS}}},
    )
    manifests = render_chart(values)
    (tmp_path / "settings").mkdir()
    settings_file = tmp_path / "settings" / "settings.yaml"
    settings_file.write_text(find(manifests, "ConfigMap", "analysis-hub-settings")["data"]["settings.yaml"])
    catalog_dir = tmp_path / "profiles"
    catalog_dir.mkdir()
    for name, text in find(manifests, "ConfigMap", "analysis-hub-catalog")["data"].items():
        (catalog_dir / name).write_text(text)
    # The chart's extraEnv, with the mount points moved under tmp_path.
    environ = {
        "ANALYSIS_HUB_SETTINGS": str(settings_file),
        "ANALYSIS_HUB_CATALOG": str(catalog_dir),
        # The hub image's own copy of images/*/image.yaml (images/hub/Dockerfile).
        "ANALYSIS_HUB_IMAGES_DIR": str(REPO / "images"),
        "ANALYSIS_HUB_DATA_DIR": str(tmp_path / "srv"),
        "OAUTH_CLIENT_SECRET": "from-the-kubernetes-secret",
    }
    return values, environ, tmp_path


async def pod_for(config: Config, groups: list[str], options: dict) -> dict:
    spawner = CatalogKubeSpawner(config=config, user=hub_user("ana", groups), hub=HUB)
    spawner.user_options = options
    await load_request(spawner)
    pod = pod_as_dict(await spawner.get_pod_manifest())
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
    return pod


async def test_under_the_chart_the_hub_spawns_from_the_catalog_with_our_login(hub_files):
    """After z2jh's configuration, ours: the catalog-driven spawner (the catalog's form, not
    a KubeSpawner profile list), the OIDC login with the client secret from the Kubernetes Secret,
    z2jh's auth-state keys left as they are and no key file of ours, the activity policy with
    z2jh's culling interval, z2jh's extra env kept; image folders for the catalog check made
    from `images`."""
    values, environ, tmp_path = hub_files
    c = configure(z2jh_config(), environ)
    assert c.JupyterHub.spawner_class == "analysis_hub.backends.kubernetes.spawner.CatalogKubeSpawner"
    assert c.CatalogKubeSpawner.profile_list == []  # the catalog's form, never KubeSpawner's list
    assert c.JupyterHub.authenticator_class == "analysis_hub.oauth.OIDCAuthenticator"
    assert c.OIDCAuthenticator.client_secret == "from-the-kubernetes-secret"
    assert c.OIDCAuthenticator.oauth_callback_url == "https://hub.example.com/hub/oauth_callback"
    assert c.OIDCAuthenticator.allowed_groups == {"data-team", "ml-team", "platform-admins"}
    assert c.CryptKeeper["keys"] == Z2JH_CRYPT_KEYS
    # Proxy traffic is not activity; servers report real work every cull.every seconds.
    assert c.JupyterHub.proxy_class == "analysis_hub.activity.ServerReportedActivityProxy"
    assert c.KubeSpawner.environment == {"COMPANY_PROXY": "http://proxy.example.com:3128"}
    assert c.CatalogSpawnerMixin.activity_interval == chart_defaults()["jupyterhub"]["cull"]["every"]
    assert not list((tmp_path / "srv").rglob("auth_state_key"))
    assert c.CatalogSpawnerMixin.known_images == sorted(values["images"])
    spawner = CatalogKubeSpawner(config=c, user=hub_user("ana", ["data-team"]), hub=HUB)
    assert spawner.profile_list == []


async def test_a_profile_the_chart_restricts_cant_be_requested(hub_files):
    """The example restricts pytorch to ml-team in values: a data-team user neither sees it nor
    gets it through user_options (400, the unknown-profile answer); an ml-team user does."""
    _, environ, _ = hub_files
    c = configure(z2jh_config(), environ)
    spawner = CatalogKubeSpawner(config=c, user=hub_user("ana", ["data-team"]), hub=HUB)
    assert offered_profiles(spawner) == ["pyspark", "tensorflow"]
    spawner.user_options = {"profile": "pytorch"}
    with pytest.raises(web.HTTPError) as refused:
        await load_request(spawner)
    assert refused.value.status_code == 400 and "Unknown profile 'pytorch'" in refused.value.log_message
    assert spawner.image != values_image("pytorch", hub_files)
    pod = await pod_for(c, ["ml-team"], {"profile": "pytorch"})
    assert pod["spec"]["containers"][0]["image"] == values_image("pytorch", hub_files)


def values_image(name: str, hub_files) -> str:
    return hub_files[0]["images"][name]


async def test_gpu_pod_from_the_chart_keeps_the_charts_tolerations_and_the_values_resources(hub_files):
    """pytorch under the chart: the production image digest, the production memory override,
    one nvidia.com/gpu, the GPU pool selector, z2jh's user-node tolerations repeated before the
    GPU one (the override replaces z2jh's list), a memory-backed /dev/shm beside z2jh's home
    PVC (volumes merge), non-root, no token; the CPU-only option drops the GPU parts only."""
    values, environ, _ = hub_files
    pod = await pod_for(configure(z2jh_config(), environ), ["ml-team"], {"profile": "pytorch"})
    [container] = pod["spec"]["containers"]
    assert container["image"] == values["images"]["pytorch"]
    resources = container["resources"]
    assert (resources["requests"]["memory"], resources["limits"]["memory"]) == (12 * 2**30, 24 * 2**30)
    assert resources["limits"]["nvidia.com/gpu"] == 1
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["NVIDIA_DRIVER_CAPABILITIES"] == "compute,utility"
    assert (env["COMPANY_PROXY"], env["JUPYTERHUB_ACTIVITY_INTERVAL"]) == (
        "http://proxy.example.com:3128",
        "60",
    )
    assert pod["spec"]["nodeSelector"] == {"analysis-hub/node-pool": "gpu"}
    assert pod["spec"]["tolerations"] == [*CHART_USER_TOLERATIONS, GPU_TOLERATION]
    shm = next(v for v in pod["spec"]["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": str(12 * 2**30)}, "half the 24Gi limit"
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert container["securityContext"]["runAsUser"] == 1000
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert_home_is_kept(pod)
    cpu_only = await pod_for(
        configure(z2jh_config(), environ), ["ml-team"], {"profile": "pytorch", "accelerator": "cpu"}
    )
    assert cpu_only["spec"]["tolerations"] == list(CHART_USER_TOLERATIONS)
    assert "nvidia.com/gpu" not in cpu_only["spec"]["containers"][0]["resources"]["limits"]
    assert "dshm" not in {v["name"] for v in cpu_only["spec"]["volumes"]}
    assert_home_is_kept(cpu_only)


async def test_pyspark_pod_from_the_chart_has_hadoop_kerberos_and_spark_on_kubernetes(hub_files):
    """pyspark under the chart with Hadoop and Spark on Kubernetes: the Hadoop ConfigMap at
    /etc/hadoop/conf with HADOOP_CONF_DIR, krb5.conf over /etc/krb5.conf only, the Spark service
    account with its token (the one case a user pod gets one), the driver label the chart's
    NetworkPolicy selects, and the fixed driver ports; tensorflow pods get none of it."""
    _, environ, _ = hub_files
    c = configure(z2jh_config(), environ)
    pod = await pod_for(c, ["data-team"], {"profile": "pyspark", "size": "large"})
    [container] = pod["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["HADOOP_CONF_DIR"] == "/etc/hadoop/conf"
    assert env["PYSPARK_SUBMIT_ARGS"] == "--driver-memory 12g pyspark-shell"
    assert (env["SPARK_KUBERNETES_EXECUTORS"], env["SPARK_KUBERNETES_SERVICE_ACCOUNT"]) == (
        "true",
        "analysis-hub-spark",
    )
    assert (env["SPARK_DRIVER_PORT"], env["SPARK_BLOCKMANAGER_PORT"]) == ("29413", "29414")
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "hadoop-conf")
    assert volume["configMap"]["name"] == "analysis-hub-hadoop"
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/etc/hadoop/conf"]["name"] == "hadoop-conf" and mounts["/etc/hadoop/conf"]["readOnly"]
    assert mounts["/etc/krb5.conf"]["subPath"] == "krb5.conf"
    assert pod["spec"]["serviceAccountName"] == "analysis-hub-spark"
    assert pod["spec"]["automountServiceAccountToken"] is True
    assert pod["metadata"]["labels"][SPARK_DRIVER_LABEL] == "true"
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert_home_is_kept(pod)

    tensorflow = await pod_for(c, ["data-team"], {"profile": "tensorflow"})
    env = {e["name"] for e in tensorflow["spec"]["containers"][0]["env"]}
    assert not env & {"HADOOP_CONF_DIR", "SPARK_KUBERNETES_EXECUTORS"}
    assert tensorflow["spec"]["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in tensorflow["spec"]
    assert SPARK_DRIVER_LABEL not in tensorflow["metadata"]["labels"]
    assert_home_is_kept(tensorflow)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"backend": "local"}, "backend: must be 'kubernetes'"),
        (
            {"backend": "kubernetes"},
            "jupyterhub.hub.services.pipelines.url: required while pipelines.enabled is true",
        ),
        (
            {
                "backend": "kubernetes",
                "pipelines": {"enabled": False},
                "auth": {"type": "oidc", "oidc": {"issuer": "https://login.example.com", "client_id": "hub"}},
            },
            "auth.oidc.callback_url: required on Kubernetes",
        ),
    ],
)
def test_settings_that_cant_work_under_the_chart_stop_the_hub_with_the_key(settings, message):
    """Settings that would start a broken hub on Kubernetes are refused, naming the key: another
    backend, pipelines on without z2jh registering the service's Deployment (the hub never
    starts it in its own pod), an OAuth login whose callback would default to the pod's own
    address."""
    with pytest.raises(SettingsError, match=message):
        apply_under_z2jh(Settings.model_validate(settings), Config(), credentials=None)


def test_under_the_chart_the_pipelines_service_is_registered_by_z2jh_and_never_started_in_the_hub(
    hub_files,
):
    """With pipelines on (the chart's default), the hub knows the service as z2jh registered it
    from our values (the Kubernetes Service's URL, z2jh's generated token) plus the same OAuth
    client as on one machine; no command and no environment, so the hub never starts it in its
    own pod; its token has no scopes and users' tokens may reach it. Every field is one
    JupyterHub's Service knows (it refuses unknown ones at start)."""
    _, environ, _ = hub_files
    c = configure(z2jh_config(), environ)
    [service] = [s for s in c.JupyterHub.services if s["name"] == "pipelines"]
    url = chart_defaults()["jupyterhub"]["hub"]["services"]["pipelines"]["url"]
    assert service == {"name": "pipelines", "url": url, "api_token": Z2JH_TOKEN, **pipelines_oauth("/")}
    assert set(service) <= set(Service.class_trait_names())
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert roles["pipelines"] == {"name": "pipelines", "scopes": [], "services": ["pipelines"]}
    assert roles["user"]["scopes"] == ["self", PIPELINES_ACCESS]


def test_a_user_role_from_z2jh_values_keeps_its_scopes_and_gains_the_pipelines_access():
    """An admin's `user` role in `hub.loadRoles` stays one role with its own scopes, plus the
    access to the pipelines service (JupyterHub refuses two roles of one name)."""
    values = merge_values(
        chart_defaults(),
        {"jupyterhub": {"hub": {"loadRoles": {"user": {"scopes": ["self", "read:metrics"]}}}}},
    )
    c = apply_under_z2jh(Settings.model_validate({"backend": "kubernetes"}), z2jh_config(values), None)
    [user] = [r for r in c.JupyterHub.load_roles if r["name"] == "user"]
    assert user["scopes"] == ["self", "read:metrics", PIPELINES_ACCESS]


def test_a_pipelines_service_with_a_command_is_refused_naming_the_key():
    """A `command` in z2jh's entry would make the hub start a second service in its own pod."""
    command = {"jupyterhub": {"hub": {"services": {"pipelines": {"command": ["python", "-m", "x"]}}}}}
    values = merge_values(chart_defaults(), command)
    with pytest.raises(SettingsError) as refused:
        apply_under_z2jh(Settings.model_validate({"backend": "kubernetes"}), z2jh_config(values), None)
    assert "jupyterhub.hub.services.pipelines.command: the service runs" in str(refused.value)


def test_the_settings_file_the_chart_writes_is_valid_as_is():
    """The chart's settings file, with the default values, passes the hub's own settings model,
    pipelines on."""
    text = find(render_chart(), "ConfigMap", "analysis-hub-settings")["data"]["settings.yaml"]
    settings = Settings.model_validate(yaml.safe_load(text))
    assert settings.backend == "kubernetes" and settings.auth.type == "builtin"
    assert settings.pipelines.enabled


def test_apply_settings_with_the_kubernetes_backend_sets_only_the_catalog_spawners_traits(tmp_path):
    """backend: kubernetes -> the catalog's KubeSpawner with its profile list named explicitly (so
    z2jh's `KubeSpawner.profile_list: []` can't hide it), image references, Hadoop and Spark facts
    from settings, and the secure pod defaults; the local backend's spawner is not configured."""
    from analysis_hub.config import HostFacts, apply_settings

    settings = Settings.model_validate(
        {
            "backend": "kubernetes",
            "kubernetes": {
                "images": {"pyspark": "registry.example.com/pyspark:1"},
                "hadoop_configmap": "analysis-hub-hadoop",
                "krb5_conf": True,
                "spark_service_account": "analysis-hub-spark",
            },
        }
    )
    c = apply_settings(settings, Config(), HostFacts(is_root=False, cgroups_writable=False))
    spawner = c.CatalogKubeSpawner
    assert c.JupyterHub.spawner_class == "analysis_hub.backends.kubernetes.spawner.CatalogKubeSpawner"
    assert spawner.profile_list == []
    assert spawner.cluster == ClusterFacts(
        images={"pyspark": "registry.example.com/pyspark:1"},
        hadoop_images=frozenset({"pyspark"}),
        hadoop_configmap="analysis-hub-hadoop",
        krb5_conf=True,
        spark_service_account="analysis-hub-spark",
        # Each image's kernel display name (images/*/image.yaml), for the server's command.
        kernel_names={
            "pyspark": "PySpark (Spark 4, Java 17)",
            "pytorch": "PyTorch (CUDA)",
            "tensorflow": "TensorFlow",
        },
    )
    assert (spawner.uid, spawner.allow_privilege_escalation, spawner.automount_service_account_token) == (
        1000,
        False,
        False,
    )
    assert spawner.container_security_context == {"capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True}
    assert "LocalProfileSpawner" not in c or "catalog_dir" not in c.LocalProfileSpawner


def test_a_first_login_on_kubernetes_uses_the_charts_generated_password(tmp_path):
    """With the built-in login, every admin without a password gets the one from the chart's
    Secret at the hub's start, and it logs in; a password changed afterwards is never reset."""
    from analysis_hub.auth import PasswordStore
    from analysis_hub.backends.kubernetes.z2jh import set_initial_admin_passwords

    settings = Settings.model_validate({"data_dir": str(tmp_path), "auth": {"admins": ["admin", "ops"]}})
    environ = {"INITIAL_ADMIN_PASSWORD": "from-the-chart-secret-123"}
    assert set_initial_admin_passwords(settings, environ) == ["admin", "ops"]
    store = PasswordStore(settings.hub_state_dir / "passwords.json")
    assert store.verify("admin", "from-the-chart-secret-123")
    store.set_password("admin", "changed-by-the-admin")
    assert set_initial_admin_passwords(settings, environ) == []
    assert store.verify("admin", "changed-by-the-admin")
    assert set_initial_admin_passwords(settings, {}) == []
