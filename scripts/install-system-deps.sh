#!/usr/bin/env bash
# Install the Debian packages the test suite needs when they are missing:
# Chromium and its driver (browser tests), a Java 17+ runtime (pyspark),
# Docker and debootstrap (images, docker backend), Prometheus and promtool (metrics),
# PostgreSQL (the pipelines service's tests start a throwaway server with its
# initdb and pg_ctl), dnsmasq (cluster DNS for the Kubernetes suite).
# Idempotent; needs root (or sudo) only when something is missing.
set -euo pipefail

missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v java >/dev/null || missing+=(default-jre-headless)
command -v useradd >/dev/null || missing+=(passwd)
# The Docker engine and Debian's client (BuildKit without buildx) for the images
# and the docker backend; debootstrap builds the base image where no registry is.
[ -x /usr/bin/docker ] && command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
# A real Prometheus for the metrics round trip; promtool checks the chart's rules and queries.
command -v prometheus >/dev/null && command -v promtool >/dev/null || missing+=(prometheus)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
# The cluster suite's names for Services (tests/kubecluster.py: dnsmasq on the cluster's bridge).
command -v dnsmasq >/dev/null || [ -x /usr/sbin/dnsmasq ] || missing+=(dnsmasq-base)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing Debian packages: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
