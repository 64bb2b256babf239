#!/usr/bin/env bash
# Install the Debian packages that Snapmanager's test environment and its
# development venv need: MariaDB, RabbitMQ, libvirt with QEMU, single-node
# Ceph, and the headers libvirt-python builds against.
#
# Idempotent: packages already present are not fetched again.
set -euo pipefail

PACKAGES=(
    # Database and message bus.
    mariadb-server mariadb-client
    rabbitmq-server
    # Hypervisor: libvirtd, virtlogd, QEMU under TCG, qemu-img.
    libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
    qemu-system-x86 qemu-utils
    # QEMU's rbd block driver, for Nova's images_type=rbd in the mini-cloud.
    qemu-block-extra
    # The venvs are made with Debian's Python where no other matches
    # python3-rbd's ABI; libvirt-python and uwsgi build from source
    # against these.
    python3-venv python3-dev gcc libvirt-dev pkg-config
    # Single-node Ceph and its Python bindings (not on PyPI).
    ceph-mon ceph-osd ceph-common python3-rados python3-rbd
    # The mini-cloud's RBD mode: Nova sizes its disk from `ceph df`, which
    # only a ceph-mgr answers.
    ceph-mgr
    # The mini-cloud's second compute host (`minicloud up --hosts 2`): an
    # sshd per host for Nova's disk copies on cold migration and resize,
    # and unshare/hostname for the UTS namespace of its libvirtd.
    openssh-server openssh-client util-linux hostname
    # The dashboard's browser tests drive a headless Chromium through
    # Selenium (tests/e2e/dashboard/).
    chromium chromium-driver
)

# Debian 13 (libvirt 11) ships libvirtd's drivers as packages of their own
# where Debian 12's libvirt-daemon has them built in: Nova and the tests
# define Ceph secrets (secret driver) and nova-compute lists host devices
# (nodedev driver).
# shellcheck source=/dev/null
. /etc/os-release
if [ "${VERSION_ID%%.*}" -ge 13 ] 2>/dev/null; then
    PACKAGES+=(libvirt-daemon-driver-secret libvirt-daemon-driver-nodedev)
fi

# libvirtd's QEMU driver refuses to start as root unless the user and group
# it was built with (libvirt-qemu) exist, even when qemu.conf runs QEMU as
# root as the test environment's does. libvirt-daemon-system would create
# them but drags in polkitd, iptables and systemd units: make just them,
# as its postinst would.
if ! getent group libvirt-qemu >/dev/null; then
    groupadd --system libvirt-qemu
fi
if ! getent passwd libvirt-qemu >/dev/null; then
    useradd --system --gid libvirt-qemu --home-dir /var/lib/libvirt \
        --no-create-home --shell /usr/sbin/nologin \
        --comment "Libvirt Qemu" libvirt-qemu
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-packages: all ${#PACKAGES[@]} packages present"
    exit 0
fi

echo "install-packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Packaged services must not be started by the package scripts: the test
# environment starts private copies itself.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod +x "$policy"
    created_policy=1
fi
trap '[ "$created_policy" = 1 ] && rm -f "$policy"' EXIT
apt-get install -y -qq --no-install-recommends "${missing[@]}"
