"""The second compute host of `minicloud up --hosts 2`.

Host 1 is the one-host cloud as it always was: the test environment's
libvirtd and `nova-compute`. Host 2 adds, on the same machine:

- its own libvirtd (`libvirtd-2`), under the test environment's subreaper
  in a mount namespace of its own (its /etc/libvirt, /var/lib/libvirt,
  /run/libvirt... are directories under `hosts/2/libvirt/`) and a UTS
  namespace of its own: libvirt reports the namespace's host name, which
  Nova takes as the compute node's name, and a `host_uuid` of its own
  (libvirt refuses to migrate a guest "to the same host" otherwise);
- its own nova-compute (`nova-compute-2`, `[DEFAULT] host` = that name,
  its own state_path and instances_path);
- an address of its own for migration traffic, and an sshd per host bound
  to that host's address only, for Nova's remote filesystem transport
  (cold migration and resize copy file-backed disks with ssh and scp).

The addresses are loopback aliases (127.0.12.1 for host 1, 127.0.12.2 for
host 2): the whole of 127.0.0.0/8 is the machine's own, so nothing is set
up, nothing outside the machine is ever contacted, and both hosts still
reach the test Ceph on 127.0.0.1 (QEMU in a network namespace would not:
Ceph's monitor and OSDs listen on the root namespace's loopback only).

libvirt's control connection between the two daemons (peer-to-peer live
migration) goes over their Unix sockets: `live_migration_uri` names a
socket under `hosts/<address>/`, a symbolic link to the destination
host's libvirtd socket; QEMU's migration stream and its NBD mirror go to
the destination's address over TCP.

Standard library only, like the rest of the tool.
"""

import pathlib
import socket
import subprocess
import uuid

# Loopback aliases: every 127/8 address is local without any set-up.
ADDRESSES = {1: "127.0.12.1", 2: "127.0.12.2"}
# Nova's provider config puts this trait on host 2's resource provider;
# the shared flavor forbids it, so servers of tests that know nothing of
# a second host keep landing on host 1.
HOST2_TRAIT = "CUSTOM_MINICLOUD_HOST2"
# The flavors the two-host tests use: one that goes anywhere, one that
# must land on host 1, one that must land on host 2 (resize targets).
MOVE_FLAVORS = {
    "minicloud.move": ({"ram": 128, "vcpus": 1, "disk": 1}, None),
    "minicloud.move-h1": (
        {"ram": 192, "vcpus": 1, "disk": 1},
        {"trait:%s" % HOST2_TRAIT: "forbidden"},
    ),
    "minicloud.move-h2": (
        {"ram": 192, "vcpus": 1, "disk": 1},
        {"trait:%s" % HOST2_TRAIT: "required"},
    ),
}

# Processes host 2 adds, in start order; sshd-1 serves host 1's address.
SERVICES = ("sshd-1", "sshd-2", "libvirtd-2", "nova-compute-2")


def host2_name():
    return "%s-2" % socket.gethostname()


def root(layout):
    return layout.root / "hosts"


def host_dir(layout, number):
    return root(layout) / str(number)


def libvirt_dir(layout):
    return host_dir(layout, 2) / "libvirt"


def libvirt_socket(layout):
    return libvirt_dir(layout) / "run" / "libvirt-sock"


def libvirt_uri(layout):
    return "qemu+unix:///system?socket=%s" % libvirt_socket(layout)


def state_path(layout):
    return layout.data / "nova-2"


def instances_dir(layout):
    """Where host 2's instances really are.

    Nova copies a file-backed disk to the same path on the destination
    (`instances_path` is the same on every host of a cloud), so host 2's
    processes see this directory at host 1's `instances_path`, through a
    bind mount in their mount namespace (see in_host2).
    """
    return state_path(layout) / "instances"


def in_host2(layout, testenv, python, argv, binds=()):
    """`argv` run in host 2's view of the file system, under a subreaper.

    `argv[0]` must be absolute (the subreaper does not search PATH).
    """
    instances_dir(layout).mkdir(parents=True, exist_ok=True)
    layout.instances_path.mkdir(parents=True, exist_ok=True)
    mounts = list(binds) + [
        "--bind",
        "%s:%s" % (instances_dir(layout), layout.instances_path),
    ]
    return [
        python,
        "-I",
        "-S",
        testenv.THIS_FILE,
        "_reaper",
        *mounts,
        "--",
        *argv,
    ]


def nova_conf_path(layout):
    return layout.conf("nova", "nova-compute-2.conf")


def ssh_dir(layout):
    return root(layout) / "ssh"


def bin_dir(layout):
    """ssh and scp wrappers, first on nova-compute's PATH (see ssh_files)."""
    return root(layout) / "bin"


def migration_options(layout, number):
    """nova.conf `[libvirt]` options of host `number` for migrations."""
    address = ADDRESSES[number]
    return {
        # Where the other host's libvirtd reaches this one: `%s` is the
        # destination's live_migration_inbound_addr (see link_sockets).
        "live_migration_uri": "qemu+unix:///system?socket=%s"
        % (root(layout) / "%s" / "libvirt-sock"),
        "live_migration_inbound_addr": address,
        # Where cold migration and resize copy disks to (ssh and scp).
        "migration_inbound_addr": address,
    }


def link_sockets(layout, host1_uri):
    """hosts/<address>/libvirt-sock -> each host's libvirtd socket."""
    sockets = {
        1: host1_uri.split("socket=", 1)[1],
        2: str(libvirt_socket(layout)),
    }
    for number, target in sockets.items():
        link = root(layout) / ADDRESSES[number] / "libvirt-sock"
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(target)


def ssh_files(layout):
    """A key pair, host keys, client config and the ssh/scp wrappers.

    Nova runs `ssh -o BatchMode=yes ADDRESS ...` and `scp` from its PATH
    as root; the wrappers add `-F` with a client configuration of this
    cloud's own (its key, its known hosts, checked strictly), so nothing
    of the machine's own ssh set-up is used or changed.
    """
    directory = ssh_dir(layout)
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    for name in ("id_ed25519", "host_ed25519_key"):
        key = directory / name
        if not key.exists():
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key],
                check=True,
                stdin=subprocess.DEVNULL,
                capture_output=True,
            )
    (directory / "authorized_keys").write_text(
        (directory / "id_ed25519.pub").read_text()
    )
    host_key = (directory / "host_ed25519_key.pub").read_text().split()
    (directory / "known_hosts").write_text(
        "".join(
            "%s %s %s\n" % (address, host_key[0], host_key[1])
            for address in ADDRESSES.values()
        )
    )
    (directory / "ssh_config").write_text(
        "Host %s\n"
        "  User root\n"
        "  IdentityFile %s\n"
        "  IdentitiesOnly yes\n"
        "  UserKnownHostsFile %s\n"
        "  GlobalKnownHostsFile /dev/null\n"
        "  StrictHostKeyChecking yes\n"
        "  BatchMode yes\n"
        % (
            " ".join(ADDRESSES.values()),
            directory / "id_ed25519",
            directory / "known_hosts",
        )
    )
    for number, address in ADDRESSES.items():
        (directory / ("sshd-%d.conf" % number)).write_text(
            "ListenAddress %s:22\n"
            "HostKey %s\n"
            "PidFile none\n"
            "AuthorizedKeysFile %s\n"
            "PermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "UsePAM no\n"
            "StrictModes no\n"
            "AllowTcpForwarding no\n"
            "X11Forwarding no\n"
            # scp speaks SFTP since OpenSSH 9.
            "Subsystem sftp internal-sftp\n"
            % (
                address,
                directory / "host_ed25519_key",
                directory / "authorized_keys",
            )
        )
    wrappers = bin_dir(layout)
    wrappers.mkdir(parents=True, exist_ok=True)
    for tool in ("ssh", "scp"):
        path = wrappers / tool
        path.write_text(
            '#!/bin/sh\nexec /usr/bin/%s -F %s "$@"\n'
            % (tool, directory / "ssh_config")
        )
        path.chmod(0o755)
    # sshd's privilege separation directory, which Debian's unit makes.
    pathlib.Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)


def libvirt_files(layout, testenv, state):
    """Host 2's libvirtd.conf and qemu.conf; the daemon's bind mounts."""
    directory = libvirt_dir(layout)
    binds = []
    for sub, target in testenv.Libvirt.MOUNTS:
        (directory / sub).mkdir(parents=True, exist_ok=True)
        binds += ["--bind", "%s:%s" % (directory / sub, target)]
    host_uuid = state.setdefault("host2_uuid", str(uuid.uuid4()))
    (directory / "etc" / "libvirtd.conf").write_text(
        testenv.LIBVIRTD_CONF.format(sock_dir=libvirt_socket(layout).parent)
        # libvirt refuses a migration between two daemons of one UUID.
        + 'host_uuid = "%s"\n' % host_uuid
    )
    (directory / "etc" / "qemu.conf").write_text(testenv.QEMU_CONF)
    return binds


def libvirtd_argv(layout, testenv, state, python):
    binds = libvirt_files(layout, testenv, state)
    pid_file = libvirt_dir(layout) / "run" / "libvirtd.pid"
    pid_file.unlink(missing_ok=True)
    return [
        # A UTS namespace of its own: libvirt's getHostname() is Nova's
        # compute node name, which must differ from host 1's.
        "unshare",
        "--uts",
        "--",
        "/bin/sh",
        "-c",
        'hostname "$1" && shift && exec "$@"',
        "sh",
        host2_name(),
        *in_host2(
            layout,
            testenv,
            python,
            [testenv.LIBVIRTD, "--pid-file", pid_file],
            binds,
        ),
    ]


def sshd_argv(layout, number):
    return [
        "/usr/sbin/sshd",
        "-D",
        "-e",
        "-f",
        ssh_dir(layout) / ("sshd-%d.conf" % number),
    ]


def provider_config(layout):
    """Nova's provider config for host 2: the trait that tells it apart."""
    directory = host_dir(layout, 2) / "provider-config"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "host2.yaml").write_text(
        "meta:\n"
        "  schema_version: '1.0'\n"
        "providers:\n"
        "  - identification:\n"
        "      name: $COMPUTE_NODE\n"
        "    traits:\n"
        "      additional:\n"
        "        - %s\n" % HOST2_TRAIT
    )
    return directory


def nova_conf_host2(layout, sections):
    """Host 2's nova.conf: host 1's, with its own name, paths and libvirt."""
    state = state_path(layout)
    sections["DEFAULT"].update(
        host=host2_name(),
        my_ip=ADDRESSES[2],
        state_path=state,
    )
    sections["libvirt"].update(
        connection_uri=libvirt_uri(layout), **migration_options(layout, 2)
    )
    sections["oslo_concurrency"] = {"lock_path": state / "lock"}
    sections["compute"] = {"provider_config_location": provider_config(layout)}
    privsep = "%s --config-file %s" % (
        layout.bin("privsep-helper"),
        nova_conf_path(layout),
    )
    for section in (
        "nova_sys_admin",
        "privsep_osbrick",
        "vif_plug_linux_bridge_privileged",
        "vif_plug_ovs_privileged",
    ):
        sections[section] = {"helper_command": privsep}
    return sections
