#!/usr/bin/env bash
# The set-up command: install everything Snapmanager needs on this machine
# and bring up the whole thing: the test environment (MariaDB, RabbitMQ,
# libvirt/QEMU, Ceph), the mini-cloud (Keystone, Placement, Glance, Nova),
# Snapmanager's API, conductor and compute agent against it, and a demo
# server; then print what to try. Safe to run again.
#
# Arguments go to `python3 tools/quickstart up` (--rbd, --kvm, --debug,
# --hosts 2 for a second compute host: tools/minicloud/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/testenv/install-packages.sh
bash tools/testenv/setup-venv.sh
exec python3 tools/quickstart up "$@"
