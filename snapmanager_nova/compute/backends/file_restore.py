"""Putting a stored snapshot back in place of Nova's disk files.

Each disk is written beside Nova's under a Snapmanager name, in the form
Nova made it: a qcow2 over Nova's base file (put back from the store if
Nova's image cache deleted it, since Nova expects it there), or a flat
raw file. It gets the owner and permissions of the file it replaces.
Only once every disk is ready are they renamed over Nova's files, one
atomic rename each, so a failure before that changes nothing and a
crash leaves only ``*.snapmanager-restore`` files that recovery removes.
"""

import os

from oslo_log import log as logging
from oslo_utils import excutils

from snapmanager_nova import exception
from snapmanager_nova.compute.backends import nova_files
from snapmanager_nova.compute.backends import overlay
from snapmanager_nova.compute.backends import store as store_mod
from snapmanager_nova.privsep import fs

LOG = logging.getLogger(__name__)

LAYOUT_DELTA = "delta"
LAYOUT_FULL = "full"
# Nova writes its image cache world-readable.
NOVA_BASE_MODE = 0o644


def restore(store, instance, index):
    """Replace ``instance``'s disks with snapshot ``index`` of ``store``.

    The domain must be shut off and on Nova's own files (no overlay).
    """
    manifest = store.read_manifest(instance.uuid, index)
    current = {disk.name: disk for disk in nova_files.nova_disks(instance)}
    plans = []
    for stored in manifest["disks"]:
        nova = current.get(stored["name"])
        if nova is None:
            raise exception.Invalid(
                reason=f"instance {instance.uuid} has no disk "
                f"{stored['name']} any more to restore into"
            )
        plans.append((stored, nova))
    temporaries = []
    try:
        for stored, nova in plans:
            source = os.path.join(
                store.snapshot_dir(instance.uuid, index),
                store_mod.check_name(stored["name"]),
            )
            temporaries.append(_prepare(store, source, stored, nova))
        for (_stored, nova), temporary in zip(plans, temporaries, strict=True):
            nova_files.call(
                f"replace {nova.name}", fs.replace, temporary, nova.path
            )
    except Exception:
        with excutils.save_and_reraise_exception():
            for temporary in temporaries:
                _remove_quietly(temporary)
    LOG.info("Restored snapshot %s of %s", index, instance.uuid)


def _prepare(store, source, stored, nova):
    """Write the new image for one Nova disk; return its path."""
    temporary = os.path.join(
        os.path.dirname(nova.path), overlay.restore_name(nova.name)
    )
    nova_files.remove(temporary)  # left by an earlier failure
    backing = stored["backing"]
    nova_base = None
    if backing and nova.format == "qcow2":
        nova_base = _ensure_nova_base(store, backing)
    if stored["stored_format"] == nova.format and (
        stored["layout"] == LAYOUT_DELTA or nova_base is None
    ):
        nova_files.data_call(
            f"copy back {nova.name}",
            fs.copy_from_store,
            source,
            temporary,
            nova.path,
        )
        if nova_base:
            # The stored delta names the store's copy of the base; Nova's
            # base holds the same bytes, so only the header changes.
            nova_files.call(
                f"rebase {nova.name}",
                fs.rebase_unsafe,
                temporary,
                nova.format,
                nova_base,
                backing["format"],
            )
    elif stored.get("parent") is not None and nova_base:
        # The newer end of a chain (incremental mode): flattened first,
        # then put over Nova's base (see qemu_img.convert).
        _convert_back(source, stored, temporary, nova, None, None)
        nova_files.data_call(
            f"rebase {nova.name}",
            fs.rebase_onto_nova_base,
            temporary,
            nova.format,
            nova_base,
            backing["format"],
        )
    else:
        # A full image (a backup) to put over Nova's base, or a format
        # change: write a new image that reads exactly the same.
        _convert_back(
            source,
            stored,
            temporary,
            nova,
            nova_base,
            backing["format"] if nova_base else None,
        )
    return temporary


def _convert_back(source, stored, temporary, nova, base, base_format):
    nova_files.data_call(
        f"convert back {nova.name}",
        fs.convert_from_store,
        source,
        stored["stored_format"],
        temporary,
        nova.format,
        nova.path,
        base,
        base_format,
    )


def _ensure_nova_base(store, backing):
    """Nova's base file for a restored disk, put back if it is gone."""
    path = os.path.join(
        nova_files.base_dir(), store_mod.check_name(backing["name"])
    )
    if nova_files.file_state(path) is not None:
        return path
    stored = store.base_path(backing["name"])
    if not os.path.exists(stored):
        raise exception.SnapshotStoreError(
            path=stored, reason="the base copy of this snapshot is gone"
        )
    temporary = path + overlay.RESTORE_SUFFIX
    nova_files.remove(temporary)
    nova_files.data_call(
        f"copy back base {backing['name']}",
        fs.copy_from_store,
        stored,
        temporary,
        nova_files.base_dir(),
        NOVA_BASE_MODE,
    )
    nova_files.call("replace base", fs.replace, temporary, path)
    LOG.info("Put Nova's base %s back from the snapshot store", path)
    return path


def _remove_quietly(path):
    try:
        nova_files.remove(path)
    except Exception:
        LOG.exception("Cannot remove %s", path)
