#!/usr/bin/env bash
# Create (or refresh) the project's virtualenv at $VENV (default: .venv in
# the source tree): Snapmanager in development mode with its `dashboard`
# extra and the test requirements, every package at the version
# upper-constraints.txt pins ($CONSTRAINTS overrides the file). Needs the
# Debian packages from install-packages.sh. Ends with the smoke check: a
# resolution that cannot import or run what we ship stops here.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
VENV=${VENV:-$top/.venv}
CONSTRAINTS=${CONSTRAINTS:-$top/upper-constraints.txt}
PYTHON=$("$top/tools/testenv/pick-python.sh")

stamp=$VENV/.snapmanager-requirements
want=$({
    cat "$CONSTRAINTS" "$top/requirements.txt" "$top/test-requirements.txt" \
        "$top/setup.cfg"
    "$PYTHON" -VV
} | sha1sum | cut -d' ' -f1)
if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    echo "setup-venv: $VENV is up to date with $CONSTRAINTS"
    exit 0
fi
rm -f "$stamp"

echo "setup-venv: $PYTHON, constraints $CONSTRAINTS"
version='import sys; print("%d.%d" % sys.version_info[:2])'
if [ -x "$VENV/bin/python" ] && [ "$("$VENV/bin/python" -c "$version")" != "$("$PYTHON" -c "$version")" ]; then
    echo "setup-venv: $VENV was built with another Python: rebuilding it"
    rm -rf "$VENV"
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
# uv installs nova + horizon in seconds where pip takes minutes; it is
# pinned by the constraints like everything else.
"$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    -c "$CONSTRAINTS" uv
# pbr needs a version when building from a checkout without tags.
export PBR_VERSION=${PBR_VERSION:-0.1.0}
"$VENV/bin/python" -m uv pip install -q --python "$VENV/bin/python" \
    -c "$CONSTRAINTS" \
    -r "$top/requirements.txt" -r "$top/test-requirements.txt" \
    -e "${top}[dashboard]"

# Ceph's bindings: link Debian's extension modules into the venv (same ABI).
bash "$top/tools/testenv/link-ceph-bindings.sh" "$VENV/bin/python"

"$VENV/bin/python" "$top/tools/testenv/smoke_check.py"
echo "$want" > "$stamp"
echo "setup-venv: $VENV ready"
