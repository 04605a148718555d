#!/usr/bin/env bash
# Install everything the tests need and run them all: lint, types, unit, property, model,
# validators and the real labs. Usage: bash tests/run.sh [extra pytest args]
# Needs root for the lab tiers (namespaces, FUSE, loop devices); without root they skip.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the labs and the browser test use. Installed only when missing.
# glusterfs/fio/xfsprogs/iproute2/iptables: the netns lab; openssh: acceptance over SSH;
# qemu/libvirt/debootstrap: the libvirt lab's node image and node VMs; chromium: the report test.
# sanlock: the lab management plane's VM leases (one daemon per host).
# libxml2-dev: ovirt-engine-sdk-python (hcisim import ovirt) builds against it.
APT_PACKAGES=(glusterfs-server glusterfs-client fio xfsprogs iproute2 iptables kmod psmisc
              openssh-server openssh-client
              qemu-system-x86 qemu-utils libvirt-daemon-system libvirt-clients libvirt-dev
              pkg-config debootstrap genisoimage sanlock
              chromium chromium-driver libxml2-dev gcc libc6-dev)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "== apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

echo "== python environment (.venv)"
[ -x .venv/bin/python ] || python3 -m venv .venv
extras=test
# libvirt-python compiles against libvirt-dev; without it the libvirt tier skips.
pkg-config --exists libvirt 2>/dev/null && extras=test,libvirt
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$extras]"

echo "== ruff"
.venv/bin/ruff check .
echo "== mypy"
.venv/bin/mypy
echo "== import contracts"
.venv/bin/lint-imports
echo "== pytest"
mkdir -p runs
.venv/bin/pytest -n 2 --dist loadgroup --junitxml=runs/junit.xml "$@"
