"""A file-backed snapshot copied between two compute hosts' stores.

Three real agents, each a "host" of its own (its own host name and
snapshot store) on this one machine, and a real conductor: the snapshot
is taken on the first; the others fetch it from it through the compute
RPC calls of version 1.2, over a real transport (a private sshd on
loopback, reached by name through an ssh client configuration, as Nova's
own ``ssh`` and ``rsync`` transports reach other compute hosts), and the
copies read exactly as the original. The holder's copy is then dropped
through its agent. A receiving agent killed with SIGKILL in the middle
of a copy leaves the holder's files untouched, and once restarted
removes the partial copy and copies again.
"""

import hashlib
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import uuid as uuid_lib

import pytest

from snapmanager_nova.compute import guest
from snapmanager_nova.db import api as db_api
from tests.fixtures.services import wait_until
from tests.functional.conductor import real_agent

private_bus = real_agent.private_bus
# Names the agents reach each other's stores by, as Nova reaches other
# compute hosts by name.
HOLDER_ADDRESS = "holder-host"


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def ssh_config(tmp_path_factory):
    """A private sshd on loopback and an ssh client configuration that
    names it :data:`HOLDER_ADDRESS`, checking its host key."""
    root = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "client_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", root / name],
            check=True,
        )
    authorized = root / "authorized_keys"
    authorized.write_text((root / "client_key.pub").read_text())
    authorized.chmod(0o600)
    port = _free_port()
    (root / "sshd_config").write_text(
        f"ListenAddress 127.0.0.1:{port}\n"
        f"HostKey {root / 'host_key'}\n"
        f"AuthorizedKeysFile {authorized}\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\n"
        "UsePAM no\n"
        # Its files are under /tmp, which anybody may write to.
        "StrictModes no\n"
        # scp speaks SFTP, as on any distribution's sshd.
        "Subsystem sftp internal-sftp\n"
        f"PidFile {root / 'sshd.pid'}\n"
    )
    alias = f"[127.0.0.1]:{port}"
    host_key = (root / "host_key.pub").read_text().split()[:2]
    (root / "known_hosts").write_text(f"{alias} {' '.join(host_key)}\n")
    config = root / "ssh_config"
    config.write_text(
        f"Host {HOLDER_ADDRESS}\n"
        "  HostName 127.0.0.1\n"
        f"  Port {port}\n"
        f"  User {os.environ.get('USER', 'root')}\n"
        f"  IdentityFile {root / 'client_key'}\n"
        "  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {root / 'known_hosts'}\n"
        f"  HostKeyAlias {alias}\n"
        "  StrictHostKeyChecking yes\n"
        "  ConnectTimeout 10\n"
    )
    log = open(root / "sshd.log", "wb")  # noqa: SIM115 (lives with sshd)
    sshd = subprocess.Popen(
        ["/usr/sbin/sshd", "-f", root / "sshd_config", "-D", "-e"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def listening():
        assert sshd.poll() is None, (root / "sshd.log").read_text()
        return "Server listening" in (root / "sshd.log").read_text()

    try:
        wait_until(listening, timeout=30, what="the private sshd")
        yield config
    finally:
        sshd.send_signal(signal.SIGTERM)
        sshd.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def hosts(
    private_bus, snapmanager_env, tmp_path_factory, libvirt_env, ssh_config
):
    """The holder, and two hosts fetching from it by ssh and by rsync."""
    holder = real_agent.start(snapmanager_env, tmp_path_factory, libvirt_env)
    holder.sections["compute"]["snapshot_transfer_address"] = HOLDER_ADDRESS
    holder.start_agent("file")
    fetchers = {}
    for transport in ("ssh", "rsync"):
        host = real_agent.start(snapmanager_env, tmp_path_factory, libvirt_env)
        host.sections["compute"].update(
            snapshot_transfer_transport=transport,
            snapshot_transfer_ssh_config=str(ssh_config),
            snapshot_transfer_timeout="120",
        )
        fetchers[transport] = host
    return holder, fetchers


def stored_disk(host, instance_uuid, index):
    return host.store_dir(instance_uuid, index) / "disk"


def compare(first, second):
    """``qemu-img compare``: both images read the same, through their
    backing chains (0), or not."""
    return subprocess.run(
        ["qemu-img", "compare", "-f", "qcow2", "-F", "qcow2", first, second],
        capture_output=True,
        text=True,
    )


def take(holder, instance_uuid):
    """A snapshot taken by the holder's agent, as the clock has it
    taken; its row once available."""
    ctx = holder.ctx
    index = db_api.instance_allocate_snapshot_index(ctx, instance_uuid)
    row = db_api.snapshot_create(
        ctx,
        {
            "instance_uuid": instance_uuid,
            "snapshot_index": index,
            "backend": "file",
        },
    )
    holder.compute_api.create_snapshot(
        ctx, holder.host, instance_uuid, row.id, index, guest.QUIESCE_PREFER
    )
    return real_agent.snapshot_status(ctx, row.id, "available")


def backing_chain(path):
    return subprocess.run(
        [
            "qemu-img",
            "info",
            "-f",
            "qcow2",
            "--output=json",
            "--backing-chain",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_snapshots_are_fetched_from_their_holder_and_its_copies_dropped(
    hosts, libvirt_conn, domain_name
):
    holder, fetchers = hosts
    ctx = holder.ctx
    api = holder.compute_api
    instance_uuid = real_agent.file_instance(holder, libvirt_conn, domain_name)
    holder.record(instance_uuid, "file")
    first, second = take(holder, instance_uuid), take(holder, instance_uuid)
    # The agent that took them is recorded as their holder.
    assert (first.host, second.host) == (holder.host, holder.host)

    # The newer one by ssh (with the older one it is layered over), the
    # older one alone by rsync.
    wanted = {"ssh": second, "rsync": first}
    for transport, host in fetchers.items():
        row = wanted[transport]
        index = row.snapshot_index
        source = api.describe_snapshot_files(
            ctx, holder.host, instance_uuid, index
        )
        assert source["address"] == HOLDER_ADDRESS
        assert f"{instance_uuid}/{index}/manifest.json" in source["files"]
        assert source["root"] == os.path.realpath(holder.store)
        # A transfer a crash cut short, as the agent finds it at start.
        leftover = host.store / ".incoming" / f"{instance_uuid}.{index}"
        leftover.mkdir(parents=True)
        (leftover / "disk").write_bytes(b"half")
        host.start_agent("file")
        assert not leftover.exists(), transport

        copied = api.fetch_snapshot(
            ctx, host.host, instance_uuid, index, source, timeout=180
        )
        assert copied > 0, transport
        assert index in host.stored(instance_uuid, "file"), transport
        # Read through their backing chains, the copy and the original
        # hold the same bytes.
        result = compare(
            str(stored_disk(holder, instance_uuid, index)),
            str(stored_disk(host, instance_uuid, index)),
        )
        assert result.returncode == 0, (transport, result.stdout)
        # Nothing of the copy names the holder's store any more.
        chain = backing_chain(stored_disk(host, instance_uuid, index))
        assert str(holder.store) not in chain, transport
        assert str(host.store) in chain or "../" in chain, chain
        manifest = (
            host.store_dir(instance_uuid, index) / "manifest.json"
        ).read_text()
        assert str(holder.store) not in manifest, transport
        # Asked again (a conductor resuming), it is already there.
        assert (
            api.fetch_snapshot(
                ctx, host.host, instance_uuid, index, source, timeout=180
            )
            == 0
        )
        assert not leftover.exists(), transport
    assert fetchers["ssh"].stored(instance_uuid, "file") == [
        first.snapshot_index,
        second.snapshot_index,
    ]
    assert fetchers["rsync"].stored(instance_uuid, "file") == [
        first.snapshot_index
    ]

    # The holder's copies are nobody's once other hosts hold them.
    for row in (second, first):
        api.drop_snapshot_copy(
            ctx, holder.host, instance_uuid, row.snapshot_index, row.disks
        )
    assert holder.stored(instance_uuid, "file") == []
    # The copies do not depend on it.
    for transport, host in fetchers.items():
        index = wanted[transport].snapshot_index
        check = subprocess.run(
            [
                "qemu-img",
                "check",
                "-f",
                "qcow2",
                stored_disk(host, instance_uuid, index),
            ],
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0, (transport, check.stdout, check.stderr)


def test_a_fetch_from_a_store_without_it_fails_and_leaves_nothing(hosts):
    holder, fetchers = hosts
    host = fetchers["ssh"]
    if host.agent is None:
        host.start_agent("file")
    instance_uuid = str(uuid_lib.uuid4())
    source = {
        "address": HOLDER_ADDRESS,
        "root": os.path.realpath(holder.store),
        "files": [
            f"{instance_uuid}/1/disk",
            f"{instance_uuid}/1/manifest.json",
        ],
    }
    with pytest.raises(Exception) as failure:
        holder.compute_api.fetch_snapshot(
            holder.ctx, host.host, instance_uuid, 1, source, timeout=180
        )
    assert "scp" in str(failure.value)
    assert host.stored(instance_uuid, "file") == []
    assert not pathlib.Path(
        host.store, ".incoming", f"{instance_uuid}.1"
    ).exists()


# A kill -9 of the receiving agent in the middle of a copy

# An ssh ProxyCommand that holds the connection while the file HOLD
# exists, fails it once FAIL exists, and otherwise relays it to the sshd.
PROXY = """
import os, select, socket, sys, time
hold, fail, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
while os.path.exists(hold):
    time.sleep(0.05)
if os.path.exists(fail):
    sys.exit(1)
sock = socket.create_connection(("127.0.0.1", port))
while True:
    ready, _, _ = select.select([sock, 0], [], [])
    if sock in ready:
        data = sock.recv(65536)
        if not data:
            break
        os.write(1, data)
    if 0 in ready:
        data = os.read(0, 65536)
        if not data:
            sock.shutdown(socket.SHUT_WR)
            continue
        sock.sendall(data)
"""


def held_ssh_config(ssh_config, root):
    """``ssh_config`` with the connection to the holder held until the
    test lets it go (:data:`PROXY`); the HOLD and FAIL paths."""
    hold, fail = root / "hold", root / "fail"
    proxy = root / "proxy.py"
    proxy.write_text(PROXY)
    text = ssh_config.read_text()
    port = next(
        line.split()[1] for line in text.splitlines() if "Port " in line
    )
    held = root / "ssh_config"
    held.write_text(
        text.replace(
            "  HostName 127.0.0.1\n",
            f"  ProxyCommand {sys.executable} {proxy} {hold} {fail} {port}\n",
        )
    )
    return held, hold, fail


def digests(directory):
    return {
        path.relative_to(directory): hashlib.sha256(
            path.read_bytes()
        ).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name != ".lock"
    }


def test_a_receiver_killed_mid_copy_starts_over_and_the_holder_keeps_it(
    hosts,
    snapmanager_env,
    tmp_path_factory,
    libvirt_env,
    ssh_config,
    libvirt_conn,
    domain_name,
):
    holder, _fetchers = hosts
    ctx = holder.ctx
    api = holder.compute_api
    instance_uuid = real_agent.file_instance(holder, libvirt_conn, domain_name)
    holder.record(instance_uuid, "file")
    row = take(holder, instance_uuid)
    index = row.snapshot_index
    before = digests(holder.store)
    source = api.describe_snapshot_files(
        ctx, holder.host, instance_uuid, index
    )

    config, hold, fail = held_ssh_config(
        ssh_config, tmp_path_factory.mktemp("held-ssh")
    )
    hold.touch()
    host = real_agent.start(snapmanager_env, tmp_path_factory, libvirt_env)
    host.sections["compute"].update(
        snapshot_transfer_ssh_config=str(config),
        snapshot_transfer_timeout="120",
    )
    host.start_agent("file")
    staging = host.store / ".incoming" / f"{instance_uuid}.{index}"
    answers = []

    def fetch():
        try:
            answers.append(
                api.fetch_snapshot(
                    ctx, host.host, instance_uuid, index, source, timeout=10
                )
            )
        except Exception as exc:
            answers.append(exc)

    asking = threading.Thread(target=fetch)
    asking.start()
    wait_until(staging.exists, timeout=60, what="the copy under way")
    host.agent.kill()  # SIGKILL, in the middle of the copy
    host.agent.wait(timeout=30)
    # The copy it left behind goes nowhere: its connection fails.
    fail.touch()
    hold.unlink()
    asking.join(timeout=60)
    assert answers and isinstance(answers[0], Exception), answers
    # The holder's copy was only ever read.
    assert digests(holder.store) == before

    fail.unlink()
    host.start_agent("file")
    wait_until(
        lambda: not staging.exists(),
        timeout=60,
        what="the interrupted copy removed at start",
    )
    assert host.stored(instance_uuid, "file") == []
    copied = api.fetch_snapshot(
        ctx, host.host, instance_uuid, index, source, timeout=180
    )
    assert copied > 0
    assert host.stored(instance_uuid, "file") == [index]
    result = compare(
        str(stored_disk(holder, instance_uuid, index)),
        str(stored_disk(host, instance_uuid, index)),
    )
    assert result.returncode == 0, result.stdout
    assert digests(holder.store) == before
