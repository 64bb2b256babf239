"""Change tracking for incremental snapshots, without leaving metadata.

An ``incremental`` snapshot is a libvirt push backup that also creates a
checkpoint named after the snapshot (``snapmanager-<index>``): QEMU then
keeps a dirty bitmap of that name on each disk, recording every write
since that instant, and the next snapshot copies only what the bitmap
marks.

Nova undefines domains without VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA,
so libvirt's record of a checkpoint must not stay on the domain: it is
deleted with VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY as soon as the
backup job has started, which leaves the bitmap in QEMU. Just before the
next snapshot the record is defined again (``REDEFINE``) with
``REDEFINE_VALIDATE``, which makes libvirt check that the bitmap is
still there and consistent. When it is not (QEMU was killed, Nova
replaced the disk, a migration to a new disk, a restore), tracking is
lost and the snapshot is a full one.

The bitmap is persistent: QEMU writes it into Nova's qcow2 ``disk`` when
it closes it, and reads it back at the next start, so tracking survives
a clean stop and start. A QEMU that is killed leaves it marked in use
(inconsistent), and ``qemu-img resize`` (Nova's resize) refuses an image
with an inconsistent bitmap: :func:`remove` drops ours from a running
domain and :func:`remove_offline` from the file of one that is shut off.
"""

from xml.etree import ElementTree

import libvirt
from oslo_log import log as logging

from snapmanager_nova import exception
from snapmanager_nova.compute import calls

LOG = logging.getLogger(__name__)

PREFIX = "snapmanager-"

# Any fixed value: libvirt needs one in a redefined record, nothing
# reads it back.
_CREATION_TIME = "1"


def name(index):
    return f"{PREFIX}{index}"


def parse_name(checkpoint):
    """The snapshot index of one of our checkpoint names, else None."""
    if not checkpoint.startswith(PREFIX):
        return None
    rest = checkpoint[len(PREFIX) :]
    return int(rest) if rest.isdigit() else None


def checkpoint_xml(checkpoint, targets, all_targets, redefine=False):
    """A checkpoint with a bitmap on ``targets``, none on other disks.

    Every disk is listed: libvirt would otherwise put a bitmap on any
    qcow2 disk not named (Nova's disks we skip) and fail on raw ones.
    """
    root = ElementTree.Element("domaincheckpoint")
    ElementTree.SubElement(root, "name").text = checkpoint
    if redefine:
        ElementTree.SubElement(root, "creationTime").text = _CREATION_TIME
    disks = ElementTree.SubElement(root, "disks")
    for target in all_targets:
        disk = ElementTree.SubElement(disks, "disk", name=target)
        if target in targets:
            disk.set("checkpoint", "bitmap")
            if redefine:
                disk.set("bitmap", checkpoint)
        else:
            disk.set("checkpoint", "no")
    return ElementTree.tostring(root, encoding="unicode")


def _define(dom, checkpoint, targets, all_targets, validate, timeout):
    flags = libvirt.VIR_DOMAIN_CHECKPOINT_CREATE_REDEFINE
    if validate:
        flags |= libvirt.VIR_DOMAIN_CHECKPOINT_CREATE_REDEFINE_VALIDATE
    return calls.bounded(
        "redefine checkpoint",
        timeout,
        dom.checkpointCreateXML,
        checkpoint_xml(checkpoint, targets, all_targets, redefine=True),
        flags,
    )


def restore_record(dom, checkpoint, targets, all_targets, timeout):
    """Define ``checkpoint`` again if its bitmaps are intact.

    Returns None when they are, else why not (tracking is lost). The
    record must be forgotten again (:func:`forget`) once the backup job
    that needs it has started.
    """
    try:
        _define(dom, checkpoint, targets, all_targets, True, timeout)
    except exception.BackendError as exc:
        return str(exc.kwargs.get("detail") or exc)
    return None


def forget(dom, checkpoint, timeout):
    """Delete libvirt's record of ``checkpoint``, keeping its bitmaps."""
    _delete(
        dom,
        checkpoint,
        libvirt.VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY,
        timeout,
    )


def _delete(dom, checkpoint, flags, timeout):
    try:
        found = calls.bounded(
            "look up checkpoint",
            timeout,
            dom.checkpointLookupByName,
            checkpoint,
        )
    except exception.BackendError as exc:
        if (
            exc.kwargs.get("origin_code")
            == libvirt.VIR_ERR_NO_DOMAIN_CHECKPOINT
        ):
            return False
        raise
    calls.bounded("delete checkpoint", timeout, found.delete, flags)
    return True


def remove(dom, checkpoint, targets, all_targets, timeout):
    """Drop ``checkpoint``'s bitmaps from a running domain, and its record.

    Whatever state they are in: a bitmap a killed QEMU left inconsistent
    goes too. Returns True when there was something to drop.
    """
    try:
        _define(dom, checkpoint, targets, all_targets, False, timeout)
    except exception.BackendError as exc:
        LOG.debug("No record of %s to redefine: %s", checkpoint, exc)
    try:
        return _delete(dom, checkpoint, 0, timeout)
    except exception.BackendError as exc:
        # No bitmap left to remove: the record must not stay either way.
        LOG.debug("Removing %s: %s", checkpoint, exc)
        return _delete(
            dom,
            checkpoint,
            libvirt.VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY,
            timeout,
        )


def forget_all_ours(dom, timeout):
    """Delete every record of ours a killed agent left on the domain.

    Returns {index: checkpoint name}; the bitmaps stay (the caller
    decides which of them are still a tracking base).
    """
    found = {}
    for checkpoint in calls.bounded(
        "list checkpoints", timeout, dom.listAllCheckpoints, 0
    ):
        checkpoint_name = checkpoint.getName()
        index = parse_name(checkpoint_name)
        if index is None:
            continue
        calls.bounded(
            "delete checkpoint",
            timeout,
            checkpoint.delete,
            libvirt.VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY,
        )
        found[index] = checkpoint_name
    return found


def our_bitmaps(info, in_use_only=False):
    """Names of our bitmaps in a ``qemu-img info`` dict of an image.

    ``in_use_only``: those marked in use, which in the file of a domain
    that is shut off means a QEMU was killed while it had them open.
    """
    bitmaps = (
        (info.get("format-specific") or {}).get("data", {}).get("bitmaps")
    )
    return sorted(
        bitmap["name"]
        for bitmap in bitmaps or ()
        if parse_name(bitmap.get("name", "")) is not None
        and (not in_use_only or "in-use" in bitmap.get("flags", ()))
    )
