"""The driver half of tests/images' executor check, run inside the pyspark image.

A Spark driver whose only possible executor is the one the test starts from the
image's `executor` entry point in another container (what a Kubernetes driver
does with an executor pod). Its master is a standalone master with no workers,
started here: so the driver runs a coarse-grained scheduler that accepts
executors, and no executor can come from anywhere else.

Prints `{"ready": ...}` (the application id and driver URL the executor needs)
once the session is up, waits for one executor, runs a JVM job and a Python job
on it, prints `{"result": ...}`, then keeps the session until RELEASE_FILE
exists (the test reads the executor's process meanwhile), stops, and prints
`{"stopped": true}`. Exit status 0 on success.
"""

import glob
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from pyspark.sql import SparkSession

driver_port = int(os.environ["SPARK_DRIVER_PORT"])
master_port, master_ui_port = int(os.environ["MASTER_PORT"]), int(os.environ["MASTER_UI_PORT"])
release = Path(os.environ["RELEASE_FILE"])


def say(**fields):
    print(json.dumps(fields), flush=True)


def wait_for(check, seconds, what):
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.5)


def listening(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def executor_task(_):
    import os
    import sys

    return sys.executable, os.environ.get("SPARK_EXECUTOR_ID"), os.environ.get("SPARK_EXECUTOR_POD_NAME")


jars = glob.glob(f"{sys.prefix}/lib/python*/site-packages/pyspark/jars")[0]
master = subprocess.Popen(
    [
        f"{os.environ['JAVA_HOME']}/bin/java",
        "-Xmx256m",
        "-cp",
        f"{jars}/*",
        "org.apache.spark.deploy.master.Master",
        "--host",
        "127.0.0.1",
        "--port",
        str(master_port),
        "--webui-port",
        str(master_ui_port),
    ],
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
)
try:
    wait_for(lambda: listening(master_port), 60, "the standalone master")
    spark = (
        SparkSession.builder.appName("analysis-hub-executor-check")
        .master(f"spark://127.0.0.1:{master_port}")
        .config("spark.ui.enabled", "false")
        .config("spark.executor.cores", "1")
        .config("spark.executor.memory", "512m")
        .getOrCreate()
    )
    sc = spark.sparkContext
    tracker = sc._jsc.sc().statusTracker()
    driver_url = f"spark://CoarseGrainedScheduler@127.0.0.1:{driver_port}"
    say(ready=True, app_id=sc.applicationId, driver_url=driver_url)

    wait_for(lambda: len(tracker.getExecutorInfos()) > 1, 120, "an executor to register")  # the driver counts
    count = spark.range(0, 100_000, numPartitions=4).count()
    python = sorted(set(sc.parallelize(range(8), 4).map(executor_task).collect()))
    say(result=True, count=count, executors=len(tracker.getExecutorInfos()) - 1, python=python)

    wait_for(release.exists, 120, f"{release}")
    spark.stop()
    say(stopped=True)
finally:
    master.terminate()
    master.wait(timeout=30)
