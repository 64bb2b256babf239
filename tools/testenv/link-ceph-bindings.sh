#!/usr/bin/env bash
# Link Debian's Ceph bindings (rados, rbd: not on PyPI) into the venv of
# the given Python, which must have the same ABI (tools/testenv/pick-python.sh).
#
#   tools/testenv/link-ceph-bindings.sh VENV/bin/python
set -euo pipefail

python=$1
read -r site tag < <("$python" -c 'import sys, sysconfig
print(sysconfig.get_paths()["purelib"], "cpython-%d%d" % sys.version_info[:2])')
for mod in rados rbd; do
    found=(/usr/lib/python3/dist-packages/"$mod.$tag"-*.so)
    so=${found[0]}
    if [ ! -e "$so" ]; then
        echo "link-ceph-bindings: Debian's python3-$mod for $tag is missing" >&2
        exit 1
    fi
    ln -sf "$so" "$site/$(basename "$so")"
done
