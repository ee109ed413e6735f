"""The cluster suite's shared parts: one real cluster and one install for the suite.

Package-scoped (this folder is a package): the cluster and its pods are gone before the rest
of the run's tests, which share the machine's 2 cores.

`kube_cluster` is the tests' Kubernetes (`kubecluster.KubeCluster.find()`: ../shared/k8s
as root, else the cluster KUBECONFIG names); without one, every test here is skipped with
the reason. `cluster_postgres` is a real PostgreSQL that the cluster's pods reach on the
bridge address, for the pipelines service the chart runs on PostgreSQL. `chart` is the
chart installed once for the suite (`chart_install.install`), with passwords for alice
(data-team) and bob set through the hub pod's `analysis-hub users set-password`.
"""

from __future__ import annotations

import os

import pytest
from chart_install import database_url_for_pods, install
from hubclient import HubUser
from kubecluster import KEEP_ENV, SUBNET, KubeCluster
from postgres import PostgresCluster

USERS = ("alice", "bob")


@pytest.fixture(scope="package")
def kube_cluster():
    cluster, why = KubeCluster.find()
    if cluster is None:
        pytest.skip(why)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="package")
def cluster_postgres(kube_cluster):
    listen = (kube_cluster.bridge_ip,) if kube_cluster.bridge_ip else ()
    server = PostgresCluster(listen=listen, trusted_network=SUBNET if listen else "").start()
    yield server
    server.stop()


@pytest.fixture(scope="package")
def chart(kube_cluster, cluster_postgres):
    installed = install(kube_cluster, database_url_for_pods(cluster_postgres, kube_cluster, "pipelines"))
    for user in USERS:
        installed.hub_exec("analysis-hub", "users", "set-password", user, input=f"{user}-password\n")
    yield installed
    if not os.environ.get(KEEP_ENV):  # a developer's kept cluster keeps the install to look at
        installed.uninstall()


@pytest.fixture(scope="package")
def admin(chart):
    return HubUser(chart.url, "admin", chart.admin_password)
