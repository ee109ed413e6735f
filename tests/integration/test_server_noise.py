"""What a notebook and its server's log show is what a person can act on.

One real hub (local backend) and alice's pyspark server, whose environment
gets the hub's server and kernel configuration and the pyspark image's Spark
logging (images/pyspark/log4j2.properties). Her first Spark cell computes;
what the cell shows on stderr is the JVM's one line about its incubator
module (the java launcher prints it; no setting quiets it), none of Spark's
or Hadoop's start-up warnings. The hub's log (where the local backend's
servers log) has no websocket-ping warning and no "Kernel is running over
TCP without encryption".
"""

from __future__ import annotations

import pytest
from kernels import run_code_streams

pytestmark = pytest.mark.integration

SPARK_CODE = (
    "from pyspark.sql import SparkSession\n"
    "spark = SparkSession.builder.master('local[1]').getOrCreate()\n"
    "print(spark.range(1000).filter('id % 2 = 0').count())"
)
UNACTIONABLE = (
    "log4j",
    "setLogLevel",
    "native-hadoop",
    "loopback address",
    "SPARK_LOCAL_IP",
    "Setting default log level",
)


def test_a_first_spark_cell_and_the_servers_log_carry_no_noise(hub):
    """The first Spark cell prints its count and, on stderr, nothing of Spark's or Hadoop's start-up
    chatter; the server's log has no websocket-ping warning and no unencrypted-TCP warning."""
    alice = hub.user("alice")
    assert alice.start({"profile": "pyspark"}).status_code in (201, 202)
    try:
        alice.wait_ready(timeout=900)
        shown = run_code_streams(alice, SPARK_CODE, timeout=600)
        assert shown["stdout"].strip() == "500"
        stderr = [line for line in shown["stderr"].splitlines() if line.strip()]
        assert not [line for line in stderr if any(word in line for word in UNACTIONABLE)], stderr
        assert len(stderr) <= 1, stderr  # "WARNING: Using incubator modules: jdk.incubator.vector"
        log = hub.log()
        assert "cannot be longer than the websocket_ping_interval" not in log
        assert "Kernel is running over TCP without encryption" not in log
        assert "Starting the kernel at pid" in log or "Kernel started" in log  # a kernel did start
    finally:
        alice.stop()
