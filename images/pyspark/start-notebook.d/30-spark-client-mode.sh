# Prepare Spark for client mode: the driver runs in this container (sourced by start.sh).
#
# Writes $SPARK_CONF_DIR/spark-defaults.conf from /etc/spark/conf plus:
# - spark.driver.host: SPARK_DRIVER_HOST, else this container's first address,
#   so executors (YARN containers, Kubernetes pods) can connect back;
# - spark.driver.bindAddress: SPARK_DRIVER_BIND_ADDRESS, else all interfaces
#   (executors elsewhere connect to the driver); the docker backend's host
#   network passes 127.0.0.1, so nothing of a user's Spark is reachable from
#   the network there; with Kubernetes executors, the pod's own address: Spark
#   builds the SPARK_DRIVER_URL its executor pods connect to from the bind
#   address in client mode, and 0.0.0.0 there made every executor fail;
# - fixed driver and block-manager ports when SPARK_DRIVER_PORT and
#   SPARK_BLOCKMANAGER_PORT are set (Kubernetes: the network policy opens them
#   to executors); otherwise Spark picks free ones, as containers sharing the
#   host's network must;
# - Hive tables by default (CREATE TABLE ... USING hive, saveAsTable); without a
#   hive-site.xml in HADOOP_CONF_DIR, an embedded Derby metastore and warehouse in the
#   home directory, so Hive tables survive a re-spawn;
# - SPARK_KUBERNETES_EXECUTORS=true (on Kubernetes): master k8s://, executors as
#   pods in this pod's namespace (SPARK_KUBERNETES_NAMESPACE, else the service
#   account's) from SPARK_EXECUTOR_IMAGE (default: this image, JUPYTER_IMAGE, whose
#   entrypoint.sh starts an executor), pulled per SPARK_EXECUTOR_IMAGE_PULL_POLICY
#   (default IfNotPresent: images imported into the cluster without a registry),
#   SPARK_EXECUTOR_INSTANCES of them (default 2), running as
#   SPARK_KUBERNETES_SERVICE_ACCOUNT, and owned by this pod
#   (SPARK_DRIVER_POD_NAME, default HOSTNAME) so they go when the server goes.
#   The driver talks to the API server with this pod's own service account token.
#   Executors' Python workers run the driver's PYSPARK_PYTHON (/opt/venv/bin/python,
#   named in every Python task), which the same image has. Executor pod names are
#   Spark's default, the app name plus a unique id, so two kernels of one server
#   never collide.
#
# Only notebook servers (drivers) run this: an executor pod, whose SPARK_CONF_DIR is
# the driver's read-only ConfigMap, starts from entrypoint.sh without any hook.
spark_conf=${SPARK_CONF_DIR:-/tmp/spark-conf}
mkdir -p "$spark_conf"
cp /etc/spark/conf/* "$spark_conf"/

driver_host=${SPARK_DRIVER_HOST:-}
if [ -z "$driver_host" ]; then
  read -r driver_host _ < <(hostname -I 2>/dev/null || true)
fi
{
  echo "# written by start-notebook.d/30-spark-client-mode.sh"
  echo "spark.driver.host               ${driver_host:-127.0.0.1}"
  bind_address=0.0.0.0
  [ "${SPARK_KUBERNETES_EXECUTORS:-false}" != "true" ] || bind_address=${driver_host:-0.0.0.0}
  echo "spark.driver.bindAddress        ${SPARK_DRIVER_BIND_ADDRESS:-$bind_address}"
  [ -z "${SPARK_DRIVER_PORT:-}" ] || echo "spark.driver.port               $SPARK_DRIVER_PORT"
  [ -z "${SPARK_BLOCKMANAGER_PORT:-}" ] || echo "spark.blockManager.port         $SPARK_BLOCKMANAGER_PORT"
  echo "spark.sql.catalogImplementation hive"
  if [ ! -f "${HADOOP_CONF_DIR:-/etc/hadoop/conf}/hive-site.xml" ]; then
    echo "spark.sql.warehouse.dir         ${HOME}/spark-warehouse"
    echo "spark.hadoop.javax.jdo.option.ConnectionURL jdbc:derby:;databaseName=${HOME}/.spark/metastore_db;create=true"
    echo "spark.driver.extraJavaOptions   -Dderby.system.home=${HOME}/.spark"
  fi
  if [ "${SPARK_KUBERNETES_EXECUTORS:-false}" = "true" ]; then
    namespace_file=/var/run/secrets/kubernetes.io/serviceaccount/namespace
    namespace=${SPARK_KUBERNETES_NAMESPACE:-$(cat "$namespace_file" 2>/dev/null || echo default)}
    echo "spark.master                    k8s://https://${KUBERNETES_SERVICE_HOST:-kubernetes.default.svc}:${KUBERNETES_SERVICE_PORT:-443}"
    echo "spark.submit.deployMode         client"
    echo "spark.kubernetes.namespace      ${namespace}"
    echo "spark.kubernetes.container.image ${SPARK_EXECUTOR_IMAGE:-${JUPYTER_IMAGE:-}}"
    echo "spark.kubernetes.container.image.pullPolicy ${SPARK_EXECUTOR_IMAGE_PULL_POLICY:-IfNotPresent}"
    # The client-mode driver is this pod, whatever its account; this names the executors'.
    echo "spark.kubernetes.authenticate.executor.serviceAccountName ${SPARK_KUBERNETES_SERVICE_ACCOUNT:-default}"
    # Executors are owned by this pod: deleting the server deletes them. HOSTNAME is the
    # pod's name unless the pod sets spec.hostname or the name is over 63 characters;
    # a spawner can pass metadata.name as SPARK_DRIVER_POD_NAME (Spark refuses a wrong name).
    echo "spark.kubernetes.driver.pod.name ${SPARK_DRIVER_POD_NAME:-${HOSTNAME}}"
    echo "spark.executor.instances        ${SPARK_EXECUTOR_INSTANCES:-2}"
  fi
} >> "$spark_conf/spark-defaults.conf"
mkdir -p "${HOME}/.spark"
export SPARK_CONF_DIR=$spark_conf
unset spark_conf driver_host bind_address namespace namespace_file
