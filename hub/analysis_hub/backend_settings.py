"""Each backend's section of the settings file (`kubernetes`, `docker`, `local`): typed, with defaults.

Pure models; `settings.Settings` holds one of each, and only the chosen backend reads its own.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from .images import HADOOP_CONF_DIR
from .validation import DNS_NAME, Section, matching


class KubernetesSettings(Section):
    """The kubernetes backend (KubeSpawner); the Helm chart writes this section."""

    images: dict[str, str] = Field({}, description="catalog image name -> pullable reference (tag or digest)")
    hadoop_configmap: str | None = Field(None, description="ConfigMap holding the Hadoop client XML files")
    krb5_conf: bool = Field(False, description="the Hadoop ConfigMap also holds krb5.conf (/etc/krb5.conf)")
    spark_service_account: str | None = Field(
        None,
        description="service account pyspark pods use to start Spark executors as pods; none: no API token",
    )
    start_timeout: int = Field(
        600, ge=30, description="seconds a pod may take to start, a first pull of a multi-GB image included"
    )
    team_claims: dict[str, str] = Field(
        {}, description="team -> its ReadWriteMany PersistentVolumeClaim (the chart creates and names them)"
    )
    namespace: str | None = Field(
        None, description="where pipeline steps run as Jobs; default: the pipelines service's own namespace"
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        "IfNotPresent", description="pipeline run pods' image pull policy (the chart: singleuser.image's)"
    )
    image_pull_secrets: list[str] = Field(
        [], description="Secrets pipeline run pods pull their image with (the chart: z2jh's pull secrets)"
    )

    @field_validator("namespace")
    @classmethod
    def _names(cls, value):
        return matching(value, *DNS_NAME)

    @field_validator("image_pull_secrets")
    @classmethod
    def _secret_names(cls, value):
        return [matching(name, *DNS_NAME) for name in value]


class DockerSettings(Section):
    """The docker backend: a container per user from the curated images (DockerSpawner)."""

    image_tags_file: Path = Field(
        Path("build/image-tags.json"), description="image -> tag, written by scripts/build_images.py"
    )
    images: dict[str, str] = Field({}, description="catalog image name -> local image (overrides the tags)")
    hadoop_conf_dir: Path | None = Field(None, description=f"host folder for {HADOOP_CONF_DIR} (read-only)")
    start_timeout: int = Field(120, ge=10, description="seconds a container may take to answer")
    network_subnet: str | None = Field(
        None,
        description="subnet (CIDR) of the network this hub's containers join; default: Docker picks a"
        " free one at the first start. Set one that clashes with none of your company's addresses",
    )

    @field_validator("network_subnet")
    @classmethod
    def _cidr(cls, value):
        if value is not None:
            try:
                network = ipaddress.IPv4Network(value)
            except ValueError:
                raise ValueError(f"{value!r} is not an IPv4 subnet such as 10.200.0.0/24") from None
            if network.num_addresses < 8:
                raise ValueError(f"{value!r} is too small: /29 or larger")
        return value


class LocalSettings(Section):
    """The local backend: a Python environment per image, a Unix user per hub user."""

    envs_dir: Path | None = Field(None, description="default: <data_dir>/envs")
    homes_dir: Path | None = Field(
        None, description="default: /home when the hub runs as root, else <data_dir>/homes"
    )
    python: str | None = Field(
        None,
        description="interpreter for environments; default: the hub's, or a system one all users can run",
    )
    isolation: Literal["auto", "unix-users", "none"] = Field(
        "auto", description="auto: a Unix user per hub user when the hub runs as root"
    )
    cgroups: Literal["auto", "required", "off"] = Field(
        "auto", description="enforce profile CPU/memory limits with cgroups where writable"
    )

    @field_validator("cgroups", mode="before")
    @classmethod
    def _yaml_off(cls, value):
        # YAML 1.1 reads a bare `off` as false; the admin meant "off".
        return "off" if value is False else value

    start_timeout: int = Field(
        1800, ge=30, description="seconds a spawn may take, a first environment build included"
    )
