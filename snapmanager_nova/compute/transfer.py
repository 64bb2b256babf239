"""Copying a file-backed snapshot between two compute hosts' stores.

A file-backed snapshot lives in the store of the host that took it (its
holder, recorded on the snapshot's row). When its server has moved and
is to be restored, the conductor asks the holder's agent which files the
snapshot needs (:func:`needed_files`), then the agent of the server's
host now fetches them (:func:`fetch`) with the means Nova itself uses
between compute hosts for resize and cold migration of file-backed
disks (``[compute] snapshot_transfer_transport``: scp or rsync, both
over ssh), and the conductor records the new holder.

The receiving side does the writing, so the holder's copy is only ever
read: a crash or a deadline anywhere leaves it intact. Files arrive in a
staging directory of the receiving store (``.incoming/<uuid>.<index>``,
which the store's own listing and recovery never take for a snapshot),
have their image headers pointed at this store's files, and are then
published under the store's lock, each by a rename: base copies first,
each snapshot's manifest after its disks, so the snapshot is listed
complete or not at all. A fetch that is asked again starts over from an empty
staging directory, and an agent that starts removes whatever staging
directories a crash left (:func:`clean_incoming`).

Nothing here needs privileges: the store is the agent's. Commands are
argument lists run through processutils, each under coreutils'
``timeout`` so that a stuck transfer is killed at its deadline.
"""

import json
import os
import shutil
import time

from oslo_concurrency import processutils
from oslo_log import log as logging
from oslo_utils import uuidutils

from snapmanager_nova import exception
from snapmanager_nova import qemu_img
from snapmanager_nova.compute import calls
from snapmanager_nova.compute.backends import store as store_mod

LOG = logging.getLogger(__name__)

INCOMING = ".incoming"
# After the deadline, how long the transfer has to end before it is
# killed outright.
KILL_AFTER = 10
TRANSPORTS = ("ssh", "rsync")


def check_relative(relative):
    """Refuse a path that is not a file of a store's own layout
    (``_base/<name>`` or ``<uuid>/<index>/<name>``): the holder names
    them, and a name must not step out of the store."""
    parts = relative.split("/")
    if parts[0] == store_mod.BASE_DIR and len(parts) == 2:
        store_mod.check_name(parts[1])
        return relative
    if (
        len(parts) == 3
        and uuidutils.is_uuid_like(parts[0])
        and parts[1].isdigit()
        and (parts[2] == store_mod.MANIFEST or store_mod.check_name(parts[2]))
    ):
        return relative
    raise exception.Invalid(reason=f"unusable store file {relative!r}")


def needed_files(store, instance_uuid, index):
    """The files snapshot ``index`` needs, relative to the store's root,
    in the order to publish them (each manifest after its disks): see
    :meth:`.store.Store.chain_files`. StoredSnapshotNotFound if the
    store lacks it."""
    root = os.path.realpath(store.root)
    return [
        check_relative(os.path.relpath(os.path.realpath(path), root))
        for path in store.chain_files(instance_uuid, index)
    ]


def own_manifest(instance_uuid, index):
    return "/".join([instance_uuid, str(index), store_mod.MANIFEST])


def staging_dir(store, instance_uuid, index):
    store._check_uuid(instance_uuid)
    store._check_index(index)
    return os.path.join(store.root, INCOMING, f"{instance_uuid}.{index}")


def clean_incoming(store):
    """Remove the staging directories a crash left; return their names."""
    directory = os.path.join(store.root, INCOMING)
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    for name in names:
        shutil.rmtree(os.path.join(directory, name), ignore_errors=True)
    if names:
        LOG.warning("Removed interrupted snapshot transfers %s", names)
    return names


def _ssh_options(ssh_config):
    # Batch mode: a missing key must fail, not wait for a password.
    options = ["-o", "BatchMode=yes"]
    if ssh_config:
        options = ["-F", ssh_config, *options]
    return options


def copy_command(transport, address, source, destination, ssh_config=None):
    """The argument list that copies the remote file ``source`` (by
    absolute path on ``address``) to ``destination``.

    No shell on this side; on the remote side the paths are store files
    (:func:`check_relative`) under the holder's root, and rsync is told
    not to let the remote shell read them at all.
    """
    if transport not in TRANSPORTS:
        raise exception.Invalid(reason=f"unknown transport {transport!r}")
    remote = f"{address}:{source}"
    if transport == "rsync":
        shell = " ".join(["ssh", *_ssh_options(ssh_config)])
        return [
            "rsync",
            "--archive",
            "--sparse",
            "--protect-args",
            "-e",
            shell,
            remote,
            destination,
        ]
    return ["scp", "-p", *_ssh_options(ssh_config), remote, destination]


def _run(argv, timeout):
    """Run ``argv`` with a deadline; BackendError naming it on failure."""
    try:
        processutils.execute(
            "timeout",
            f"--kill-after={KILL_AFTER}",
            str(timeout),
            *argv,
            env_variables={"LC_ALL": "C", "LANG": "C"},
        )
    except processutils.ProcessExecutionError as exc:
        if exc.exit_code in (124, 137):
            raise exception.BackendTimeout(
                operation=argv[0], timeout=timeout
            ) from exc
        raise exception.BackendError(
            operation=argv[0],
            origin=argv[0],
            origin_code=exc.exit_code,
            detail=(exc.stderr or exc.stdout or "").strip()[-500:],
        ) from exc


def fetch(
    store,
    instance_uuid,
    index,
    source,
    transport,
    timeout,
    ssh_config=None,
):
    """Copy snapshot ``index`` from another host's store into ``store``.

    ``source``: what the holder's agent answered (:func:`describe`):
    ``address``, ``root`` and the ``files`` to copy. Returns the bytes
    now stored here for it; nothing if it is here already.
    """
    if index in store.list_indexes(instance_uuid):
        return 0
    files = [check_relative(path) for path in source["files"]]
    if own_manifest(instance_uuid, index) not in files:
        raise exception.Invalid(
            reason=f"the holder's list for snapshot {index} lacks its manifest"
        )
    # One deadline for the whole copy, however many files it takes.
    deadline = time.monotonic() + timeout

    def remaining():
        left = int(deadline - time.monotonic())
        if left < 1:
            raise exception.BackendTimeout(
                operation=f"fetching snapshot {index}", timeout=timeout
            )
        return left

    staging = staging_dir(store, instance_uuid, index)
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging, 0o700)
    try:
        for relative in files:
            if os.path.exists(os.path.join(store.root, relative)):
                continue  # a base copy or chain member already here
            local = os.path.join(staging, relative)
            os.makedirs(os.path.dirname(local), 0o700, exist_ok=True)
            _run(
                copy_command(
                    transport,
                    source["address"],
                    os.path.join(source["root"], relative),
                    local,
                    ssh_config,
                ),
                remaining(),
            )
        _point_at_this_store(store, staging, source["root"], remaining())
        _rewrite_manifests(store, staging, source["root"])
        return _publish(store, staging, files)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _point_at_this_store(store, staging, source_root, timeout):
    """Rewrite image headers that name the holder's store by absolute
    path so they name this one (same bytes, same relative place)."""
    for parent, _dirs, files in os.walk(staging):
        for name in files:
            path = os.path.join(parent, name)
            if name == store_mod.MANIFEST:
                continue
            try:
                info = calls.bounded(
                    f"qemu-img info {path}",
                    timeout,
                    qemu_img.info,
                    path,
                    "qcow2",
                )
            except exception.BackendError:
                continue  # not a qcow2 image: nothing names a backing
            backing = info.get("backing-filename")
            if not backing or not os.path.isabs(backing):
                continue
            relative = os.path.relpath(backing, source_root)
            if relative.startswith(os.pardir):
                continue
            calls.bounded(
                f"rebase {path}",
                timeout,
                qemu_img.rebase_unsafe,
                path,
                "qcow2",
                os.path.join(store.root, relative),
                info.get("backing-filename-format") or "raw",
            )


def _rewrite_manifests(store, staging, source_root):
    """Paths the fetched manifests record (for operators: the store reads
    entries by name) say where the files are now."""
    prefix = source_root.rstrip("/") + "/"

    def moved(value):
        if isinstance(value, str) and value.startswith(prefix):
            return os.path.join(store.root, value[len(prefix) :])
        if isinstance(value, dict):
            return {key: moved(item) for key, item in value.items()}
        if isinstance(value, list):
            return [moved(item) for item in value]
        return value

    for parent, _dirs, files in os.walk(staging):
        if store_mod.MANIFEST in files:
            path = os.path.join(parent, store_mod.MANIFEST)
            with open(path, encoding="utf-8") as stream:
                manifest = json.load(stream)
            store_mod._write_json(path, moved(manifest))


def _publish(store, staging, files):
    """Rename the fetched files into the store, in the holder's order:
    base copies first, each snapshot's manifest after its disks, so a
    snapshot is listed only once it is whole.

    Under the store's lock: a base copy published here must not be
    collected as unreferenced before the manifest naming it is in place.
    """
    size = 0
    store._ensure_root()
    with store.lock():
        for relative in files:
            fetched = os.path.join(staging, relative)
            final = os.path.join(store.root, relative)
            if not os.path.exists(fetched) or os.path.exists(final):
                continue
            parent = os.path.dirname(final)
            if not os.path.isdir(parent):
                # The instance's directory as the store makes it (QEMU
                # may pass through), a snapshot's its owner's alone.
                os.makedirs(
                    os.path.dirname(parent), store_mod.SEARCH_ONLY, True
                )
                os.makedirs(parent, 0o700, exist_ok=True)
            size += store_mod.allocated_bytes(fetched)
            os.rename(fetched, final)
    LOG.info("Fetched %d file(s) into the store (%d bytes)", len(files), size)
    return size


def describe(store, instance_uuid, index, address):
    """What a host's agent tells the conductor to fetch a snapshot from
    it: where to reach it, its store's root, and the files needed."""
    return {
        "address": address,
        "root": os.path.realpath(store.root),
        "files": needed_files(store, instance_uuid, index),
    }
