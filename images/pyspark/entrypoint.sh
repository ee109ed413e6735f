#!/bin/bash
# The pyspark image's entry point (under tini): a Spark executor, or a notebook server.
#
# On Kubernetes the pyspark kernel is a Spark driver in client mode, and it
# starts its executors as pods of this same image (spark.kubernetes.container.image)
# with the single argument `executor`. Spark passes everything else as
# environment: SPARK_DRIVER_URL, SPARK_EXECUTOR_ID, SPARK_EXECUTOR_CORES,
# SPARK_EXECUTOR_MEMORY, SPARK_APPLICATION_ID, SPARK_EXECUTOR_POD_IP,
# SPARK_EXECUTOR_POD_NAME, SPARK_RESOURCE_PROFILE_ID, the JVM options as
# SPARK_JAVA_OPT_0, _1, … (spark.executor.extraJavaOptions, the driver's
# settings), SPARK_CLASSPATH and SPARK_EXECUTOR_LIBRARY_PATH
# (spark.executor.extraClassPath / extraLibraryPath). The driver's conf
# directory is a read-only ConfigMap at SPARK_CONF_DIR=/opt/spark/conf.
#
# `executor` runs what Spark's own images run for it: KubernetesExecutorBackend
# (pyspark 4.3's argument names) in a JVM sized by SPARK_EXECUTOR_MEMORY, on
# the classpath of pip's pyspark jars. It is exec'd, so the JVM is tini's child
# and gets the pod's SIGTERM. Python workers run PYSPARK_PYTHON (/opt/venv/bin/python,
# the image's environment), which the driver also names in every Python task.
#
# Any other command goes to the base image's start.sh (start hooks, then the
# command; jupyterhub-singleuser by default). The decision is made here, before
# start.sh, rather than in a start hook: hooks are sourced inside a function and
# never see the container's arguments, and an executor must run none of them.
# The notebook hooks prepare a driver (30-spark-client-mode.sh writes
# spark-defaults.conf into SPARK_CONF_DIR, which is the read-only ConfigMap in
# an executor pod; Kerberos tickets reach executors as delegation tokens from
# the driver). So an executor writes nothing, to its conf directory or elsewhere.
set -euo pipefail

start_executor() {
  local name jars
  local -a java_opts=() classpath=()
  : "${SPARK_DRIVER_URL:?the driver sets SPARK_DRIVER_URL for its executors}"
  : "${SPARK_EXECUTOR_ID:?the driver sets SPARK_EXECUTOR_ID}"
  : "${SPARK_EXECUTOR_CORES:?the driver sets SPARK_EXECUTOR_CORES}"
  : "${SPARK_EXECUTOR_MEMORY:?the driver sets SPARK_EXECUTOR_MEMORY}"
  : "${SPARK_APPLICATION_ID:?the driver sets SPARK_APPLICATION_ID}"
  : "${SPARK_EXECUTOR_POD_IP:?the driver sets SPARK_EXECUTOR_POD_IP (the pod IP)}"

  # One JVM argument per variable (values may hold spaces), in Spark's order: by index.
  while read -r name; do
    java_opts+=("${!name}")
  done < <(compgen -v SPARK_JAVA_OPT_ | grep -E '^SPARK_JAVA_OPT_[0-9]+$' | sort -t_ -k4,4n || true)

  # The conf directory first (log4j2.properties and friends), then Hadoop's, then
  # spark.executor.extraClassPath, then pyspark's own jars (a Java wildcard, not a glob).
  jars=$(compgen -G '/opt/venv/lib/python*/site-packages/pyspark/jars' | head -n 1 || true)
  if [ -z "$jars" ]; then
    echo "pyspark executor: no pyspark jars under /opt/venv/lib/python*/site-packages" >&2
    exit 1
  fi
  [ -z "${SPARK_CONF_DIR:-}" ] || classpath+=("$SPARK_CONF_DIR")
  [ -z "${HADOOP_CONF_DIR:-}" ] || classpath+=("$HADOOP_CONF_DIR")
  [ -z "${SPARK_CLASSPATH:-}" ] || classpath+=("$SPARK_CLASSPATH")
  classpath+=("$jars/*")

  if [ -n "${SPARK_EXECUTOR_LIBRARY_PATH:-}" ]; then
    export LD_LIBRARY_PATH="$SPARK_EXECUTOR_LIBRARY_PATH${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi

  local -a command=(
    "${JAVA_HOME:-/usr}/bin/java"
    "${java_opts[@]}"
    "-Xms$SPARK_EXECUTOR_MEMORY"
    "-Xmx$SPARK_EXECUTOR_MEMORY"
    -cp "$(IFS=:; echo "${classpath[*]}")"
    org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend
    --driver-url "$SPARK_DRIVER_URL"
    --executor-id "$SPARK_EXECUTOR_ID"
    --cores "$SPARK_EXECUTOR_CORES"
    --app-id "$SPARK_APPLICATION_ID"
    --hostname "$SPARK_EXECUTOR_POD_IP"
    --resourceProfileId "${SPARK_RESOURCE_PROFILE_ID:-0}"
  )
  # Spark sets it from the pod's metadata.name (downward API).
  [ -z "${SPARK_EXECUTOR_POD_NAME:-}" ] || command+=(--podName "$SPARK_EXECUTOR_POD_NAME")

  echo "pyspark executor: exec ${command[*]}" >&2
  exec "${command[@]}"
}

case "${1:-}" in
  executor)
    shift
    start_executor "$@"
    ;;
  *)
    exec /usr/local/bin/start.sh "$@"
    ;;
esac
