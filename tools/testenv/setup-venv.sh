#!/usr/bin/env bash
# Create (or refresh) the project's virtualenv at $VENV (default: .venv in
# the source tree) with Snapmanager installed in development mode plus the
# test requirements. Needs the Debian packages from install-packages.sh.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
VENV=${VENV:-$top/.venv}
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "setup-venv: $PYTHON is not CPython 3.11 (Ceph's Debian bindings are built for 3.11)" >&2
    exit 1
fi

# uv resolves and installs nova + horizon in seconds where pip takes minutes.
if ! command -v uv >/dev/null; then
    "$PYTHON" -m pip install -q uv
fi

stamp=$VENV/.snapmanager-requirements
want=$(cat "$top/requirements.txt" "$top/test-requirements.txt" "$top/setup.cfg" | sha1sum | cut -d' ' -f1)
if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    echo "setup-venv: $VENV is up to date"
    exit 0
fi

[ -x "$VENV/bin/python" ] || uv venv -q --python "$PYTHON" "$VENV"
# pbr needs a version when building from a checkout without tags.
export PBR_VERSION=${PBR_VERSION:-0.1.0}
uv pip install -q --python "$VENV/bin/python" \
    -r "$top/requirements.txt" -r "$top/test-requirements.txt" -e "$top"

# Ceph's bindings: link Debian's extension modules into the venv (same ABI).
site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
for mod in rados rbd; do
    so=$(ls /usr/lib/python3/dist-packages/$mod.cpython-311-*.so 2>/dev/null | head -1)
    if [ -z "$so" ]; then
        echo "setup-venv: Debian's python3-$mod for CPython 3.11 is missing" >&2
        exit 1
    fi
    ln -sf "$so" "$site/$(basename "$so")"
done
"$VENV/bin/python" -c 'import rados, rbd, libvirt, nova, horizon'
echo "$want" > "$stamp"
echo "setup-venv: $VENV ready"
