#!/usr/bin/env bash
# The one test command: on a fresh Debian 12 or 13 machine it installs what
# the tests need (Debian packages, the venv), checks style, and runs the
# whole suite. Real components (MariaDB, RabbitMQ, libvirt/QEMU, Ceph, the
# mini-cloud) are started by the test fixtures on first use and stopped at
# the end; one that cannot start fails the run with its log.
#
# Extra arguments go to pytest, e.g. `tools/run-tests.sh tests/unit`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/testenv/install-packages.sh
bash tools/testenv/setup-venv.sh

.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/pytest -p no:cacheprovider "$@"
