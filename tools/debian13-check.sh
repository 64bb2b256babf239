#!/usr/bin/env bash
# The Debian 13 (trixie) check, runnable on a Debian 12 machine: bootstrap a
# trixie root with Debian's debootstrap, clone this checkout into it, and
# run there exactly what a fresh Debian 13 machine runs: the package
# install, the pinned venv with its smoke check (Debian 13's Python 3.13,
# for which its Ceph 18 bindings are built), the unit tests, and the
# functional tests against Ceph 18's own cluster and librbd.
#
#   tools/debian13-check.sh [PYTEST-ARGS ...]
#
# Runs as root. The root lives in $DEBIAN13_ROOT (default
# .testenv/debian13); bootstrapping it takes a few minutes once, later runs
# reuse it. The check runs in its own mount and PID namespaces (and the
# tests in their own network namespace), so nothing it starts outlives it
# or meets the host's test environment. Default pytest arguments: the unit tests and the
# Ceph functional tests.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
root=${DEBIAN13_ROOT:-$top/.testenv/debian13}
log=${root}.log
if [ $# -eq 0 ]; then
    set -- tests/unit tests/functional/compute/test_rbd_snapshot.py \
        tests/functional/compute/test_rbd_recovery.py \
        tests/functional/test_testenv.py
fi

if ! command -v debootstrap >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
fi

# The mirror this machine's apt already uses.
mirror=$(grep -rhoE '^(URIs:|deb) +[a-z]+://[^ ]+/debian/?( |$)' \
    /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null |
    awk '{print $2}' | head -1 || true)
if [ -z "$mirror" ]; then
    echo "debian13-check: no Debian mirror found in apt's sources" >&2
    exit 1
fi

if [ ! -e "$root/.bootstrapped" ]; then
    echo "debian13-check: bootstrapping trixie into $root (log: $log)"
    rm -rf "$root"
    mkdir -p "$root"
    debootstrap --variant=minbase \
        --include=ca-certificates,git,procps,iproute2 \
        trixie "$root" "$mirror" > "$log" 2>&1 ||
        { tail -20 "$log" >&2; exit 1; }
    touch "$root/.bootstrapped"
fi
# The host's network settings: name resolution and the certificate
# authorities it trusts beyond Debian's (a site's TLS proxy, for one).
cp /etc/resolv.conf "$root/etc/resolv.conf"
mkdir -p "$root/usr/local/share/ca-certificates"
cp -r /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
tls_env=()
for var in SSL_CERT_FILE SSL_CERT_DIR PIP_CERT REQUESTS_CA_BUNDLE; do
    [ -n "${!var:-}" ] && tls_env+=("$var=${!var}")
done

# A fresh clone of what is committed, as CI gets it: the host's venv, test
# environment and uncommitted changes stay out.
rm -rf "$root/src"
git clone -q --no-hardlinks "$top" "$root/src"

# The steps run inside, as a fresh Debian 13 machine's CI would.
cat > "$root/src/.debian13-steps" <<'STEPS'
set -euo pipefail
cd /src
cat /etc/debian_version
update-ca-certificates >/dev/null
bash tools/testenv/install-packages.sh
bash tools/testenv/setup-venv.sh
echo "debian13-check: python $(.venv/bin/python -V 2>&1 | cut -d' ' -f2)," \
    "ceph $(ceph --version | cut -d' ' -f3), librbd bindings" \
    "$(.venv/bin/python -c 'import rbd; print(rbd.__file__)')"
# The tests get a network namespace of their own: the components they
# start take their usual loopback ports without meeting the host's.
exec unshare --net bash -c 'ip link set lo up && exec "$@"' tests \
    .venv/bin/pytest -p no:cacheprovider "$@"
STEPS

# shellcheck disable=SC2016 # expanded by the inner shell
exec unshare --mount --pid --fork --propagation private bash -c '
    set -euo pipefail
    root=$1; shift
    read -r -a tls_env <<< "$1"; shift
    # The root must be a mount point of its own, as on a machine:
    # testenv makes the mounts of libvirtd private from "/".
    mount --bind "$root" "$root"
    mount -t proc proc "$root/proc"
    mount -t sysfs sysfs "$root/sys"
    mount --rbind /dev "$root/dev"
    mount -t tmpfs tmpfs "$root/tmp"
    mount -t tmpfs tmpfs "$root/run"
    exec chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        "${tls_env[@]}" \
        bash /src/.debian13-steps "$@"
' debian13-check "$root" "${tls_env[*]}" "$@"
