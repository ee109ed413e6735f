"""The cluster suite's shared parts: one real cluster per test run, one install per module.

`kube_cluster` is the tests' Kubernetes (`kubecluster.KubeCluster.find()`: ../shared/k8s
as root, else the cluster KUBECONFIG names); without one, every test here is skipped with
the reason. `cluster_postgres` is a real PostgreSQL that the cluster's pods reach on the
bridge address, for the pipelines service the chart runs on PostgreSQL.
"""

from __future__ import annotations

import pytest
from kubecluster import SUBNET, KubeCluster
from postgres import PostgresCluster


@pytest.fixture(scope="session")
def kube_cluster():
    cluster, why = KubeCluster.find()
    if cluster is None:
        pytest.skip(why)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def cluster_postgres(kube_cluster):
    listen = (kube_cluster.bridge_ip,) if kube_cluster.bridge_ip else ()
    server = PostgresCluster(listen=listen, trusted_network=SUBNET if listen else "").start()
    yield server
    server.stop()
