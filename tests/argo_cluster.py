"""The stand-in cluster the Argo executor's tests share: fixtures for a module (see argo_standin).

`s3` is moto's S3 server with the runs' bucket, `cluster` the stand-in Kubernetes API and Argo
controller (its pods find `analysis_hub_outputs` as the curated images have it), and `executor`
the real `ArgoExecutor` pointed at both. A test module that uses them names this module in
`pytest_plugins`.
"""

from __future__ import annotations

import logging

import boto3
import pytest
from analysis_hub.backends.kubernetes.argo_executor import ArgoExecutor
from analysis_hub.backends.kubernetes.profiles import ClusterFacts
from analysis_hub.backends.kubernetes.workflows import WorkflowSettings
from argo_standin import StandInArgo, StandInKubernetes
from harness import REPO, free_port
from moto.server import ThreadedMotoServer

NAMESPACE = "analysis-hub"
BUCKET = "pipeline-runs"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "stand-in",
    "AWS_SECRET_ACCESS_KEY": "stand-in",
    "AWS_DEFAULT_REGION": "us-east-1",
}
IMAGE_REFS = {
    n: f"registry.example.com/analysis-hub/{n}:abc123" for n in ("pyspark", "pytorch", "tensorflow")
}
IMAGE_PYTHON_PATH = REPO / "hub" / "analysis_hub" / "singleuser"  # in every curated image


@pytest.fixture(scope="module")
def s3():
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=url, **boto3_credentials())
    client.create_bucket(Bucket=BUCKET)
    yield url, client
    server.stop()


@pytest.fixture(scope="module")
async def cluster(s3, tmp_path_factory):
    api = StandInKubernetes(NAMESPACE, tmp_path_factory.mktemp("volumes"))
    url = await api.start()
    secret = {
        "accesskey": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "secretkey": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    }
    argo = StandInArgo(api, {"s3-credentials": secret}, tmp_path_factory.mktemp("pod"), IMAGE_PYTHON_PATH)
    yield api, argo, url
    await api.stop()


@pytest.fixture(scope="module")
async def executor(cluster, s3):
    from kubernetes_asyncio.client import ApiClient, Configuration

    _, _, api_url = cluster
    s3_url, _ = s3
    configuration = Configuration(host=api_url)
    output_url, region = f"s3://{BUCKET}/analysis-hub", CREDENTIALS["AWS_DEFAULT_REGION"]
    settings = WorkflowSettings(output_url, "analysis-hub-pipeline-run", s3_url, "s3-credentials", region)
    executor = ArgoExecutor(
        NAMESPACE,
        ClusterFacts(images=IMAGE_REFS, hadoop_configmap="hadoop-conf"),
        settings,
        api_client=lambda: ApiClient(configuration),
        s3_client=lambda: boto3.client("s3", endpoint_url=s3_url, **boto3_credentials()),
    )
    yield executor
    await executor.close()


def boto3_credentials() -> dict:
    return {
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "region_name": CREDENTIALS["AWS_DEFAULT_REGION"],
    }
