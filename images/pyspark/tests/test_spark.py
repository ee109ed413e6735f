"""In-image smoke test for pyspark, run inside the container by tests/images.

The host mounts a core-site.xml (fs.defaultFS and a marker property) at
HADOOP_CONF_DIR. Promises: Java 17 and a Kerberos client are present; a
SparkSession reads fs.defaultFS from the mounted file; the start hook set
spark.driver.host to this container's address; a Hive table round-trips
through the embedded metastore. Prints one JSON line; exit status 0 on success.
"""

import json
import os
import shutil
import subprocess

from pyspark.sql import SparkSession

expected_fs = os.environ["EXPECT_DEFAULT_FS"]

java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
assert 'version "17' in java, java
assert shutil.which("kinit") and shutil.which("klist"), "Kerberos client (krb5-user) missing"
assert os.environ["HADOOP_CONF_DIR"] == "/etc/hadoop/conf"

spark = SparkSession.builder.appName("analysis-hub-smoke").master("local[1]").getOrCreate()
hadoop_conf = spark.sparkContext._jsc.hadoopConfiguration()
assert hadoop_conf.get("fs.defaultFS") == expected_fs, hadoop_conf.get("fs.defaultFS")
assert hadoop_conf.get("analysis-hub.smoke.marker") == "from-core-site"

addresses = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
driver_host = spark.conf.get("spark.driver.host")
assert driver_host in addresses, f"spark.driver.host {driver_host} is not one of {addresses}"
assert spark.conf.get("spark.sql.catalogImplementation") == "hive"

spark.sql("DROP TABLE IF EXISTS smoke_roundtrip")
spark.sql("CREATE TABLE smoke_roundtrip (id INT, name STRING) USING hive")
spark.sql("INSERT INTO smoke_roundtrip VALUES (1, 'alpha'), (2, 'beta')")
rows = sorted((r.id, r.name) for r in spark.table("smoke_roundtrip").collect())
assert rows == [(1, "alpha"), (2, "beta")], rows
tables = [t.name for t in spark.catalog.listTables()]
assert "smoke_roundtrip" in tables, tables
spark.sql("DROP TABLE smoke_roundtrip")
spark.stop()
print(json.dumps({"spark": "ok", "defaultFS": expected_fs, "driver_host": driver_host, "hive_rows": 2}))
