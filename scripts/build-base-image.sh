#!/usr/bin/env bash
# Build the Debian base image from Debian packages, for machines that reach no
# container registry (air-gapped networks, and the machines this is tested on).
#
#   scripts/build-base-image.sh [--mirror URL] [--ca-bundle FILE] [--tag NAME] [--force]
#
# debootstrap lays out a minimal Debian root file system (the same package set
# as the public debian:bookworm-slim image: variant minbase), which
# `docker import` turns into an image. The images' Dockerfiles take it as
# `--base` (scripts/build_images.py --base NAME). The release is pinned
# (bookworm: its python3 is 3.11, the version the lock files are compiled for).
#
# --mirror     Debian mirror the root file system is fetched from and that
#              apt inside the image uses later (default: deb.debian.org).
# --security-mirror  where security updates come from (default: the mirror's
#              debian-security next to its debian folder).
# --ca-bundle  extra CA certificates for an https mirror whose TLS is re-signed;
#              used by this machine's download only, never copied into the image.
# --tag        image name (default analysis-hub/debian:bookworm).
# --force      rebuild even when the tag already exists.
#
# Prints the image id on the last line. Needs root (debootstrap) and a
# running Docker engine.
set -euo pipefail

RELEASE=bookworm
mirror=http://deb.debian.org/debian
security=""
ca_bundle=""
tag=analysis-hub/debian:${RELEASE}
force=0
docker=${DOCKER:-$(command -v /usr/bin/docker || command -v docker)}

while [ $# -gt 0 ]; do
  case "$1" in
    --mirror) mirror=$2; shift 2 ;;
    --security-mirror) security=$2; shift 2 ;;
    --ca-bundle) ca_bundle=$(realpath "$2"); shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    --force) force=1; shift ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [ "$force" = 0 ] && id=$("$docker" image inspect --format '{{.Id}}' "$tag" 2>/dev/null); then
  echo "$tag exists; --force rebuilds it" >&2
  echo "$id"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap missing: scripts/install-system-deps.sh installs it" >&2; exit 1; }

rootfs=$(mktemp -d /var/tmp/analysis-hub-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
if [ -n "$ca_bundle" ]; then
  # debootstrap downloads with wget; a private wgetrc trusts the extra CA for this run only.
  export WGETRC="$rootfs.wgetrc"
  printf 'ca_certificate = %s\n' "$ca_bundle" > "$WGETRC"
  trap 'rm -rf "$rootfs" "$WGETRC"' EXIT
fi

echo "debootstrap $RELEASE from $mirror" >&2
debootstrap --variant=minbase --components=main "$RELEASE" "$rootfs" "$mirror" >&2

# Security updates: <mirror root>/debian-security unless --security-mirror says otherwise.
security=${security:-${mirror%/debian}/debian-security}
cat > "$rootfs/etc/apt/sources.list" <<EOF
deb $mirror $RELEASE main
deb $mirror $RELEASE-updates main
deb $security $RELEASE-security main
EOF
# What the slim images do: keep no package lists or caches in the image, and
# install no recommended packages by default (smaller images).
printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
  > "$rootfs/etc/apt/apt.conf.d/90analysis-hub-no-recommends"
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/log/*.log

tar --numeric-owner -C "$rootfs" -c . \
  | "$docker" import \
      --change 'CMD ["bash"]' \
      --change 'ENV LANG=C.UTF-8' \
      --message "debootstrap --variant=minbase $RELEASE $mirror" \
      - "$tag" >&2
"$docker" image inspect --format '{{.Id}}' "$tag"
