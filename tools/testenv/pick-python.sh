#!/usr/bin/env bash
# Print the Python interpreter every venv of this project is built with:
# the CPython whose ABI matches Debian's python3-rbd/python3-rados (3.11 on
# Debian 12, 3.13 on Debian 13), since Ceph's bindings are not on PyPI and
# the venvs link Debian's builds in. $PYTHON overrides the choice.
set -euo pipefail

if [ -n "${PYTHON:-}" ]; then
    command -v "$PYTHON"
    exit 0
fi

found=(/usr/lib/python3/dist-packages/rbd.cpython-3*-*.so)
so=${found[0]}
if [ ! -e "$so" ]; then
    echo "pick-python: Debian's python3-rbd is not installed (tools/testenv/install-packages.sh installs it)" >&2
    exit 1
fi
# rbd.cpython-313-x86_64-linux-gnu.so -> 3.13
tag=$(basename "$so" | sed -E 's/^rbd\.cpython-3([0-9]+)-.*/\1/')
want=python3.$tag
if ! command -v "$want" >/dev/null; then
    echo "pick-python: $want is missing (Debian's python3-rbd is built for it)" >&2
    exit 1
fi
command -v "$want"
