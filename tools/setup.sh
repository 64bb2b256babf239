#!/usr/bin/env bash
# The set-up command: install everything Snapmanager needs on this machine,
# start its test environment (MariaDB, RabbitMQ, libvirt/QEMU, Ceph) and
# create Snapmanager's database. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

bash tools/testenv/install-packages.sh
bash tools/testenv/setup-venv.sh
python3 tools/testenv/testenv.py up

state=${SNAPMANAGER_TESTENV_DIR:-$top/.testenv}
conf=$state/snapmanager.conf
.venv/bin/python tools/testenv/write_config.py "$state/env.json" "$conf"
.venv/bin/snapmanager-manage --config-file "$conf" db sync

cat <<EOT

Snapmanager is installed and its database is at the current schema.
  config:   $conf
  try:      .venv/bin/snapmanager-manage schedule check 'daily@02:30' \\
                --timezone Europe/Berlin --count 3
  status:   .venv/bin/snapmanager-status --config-file $conf upgrade check
  services: python3 tools/testenv/testenv.py status
  stop:     python3 tools/testenv/testenv.py down
EOT
