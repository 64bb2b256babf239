"""Merging Snapmanager's overlays back into Nova's disks.

After an external snapshot the domain runs on ``<disk>.snapmanager-<n>``
over Nova's ``disk``. Here the overlay goes away again without losing a
guest write:

* on a running domain, an active block commit merges it into the file
  below and a pivot makes that file the active layer again;
* on a domain that stopped with an overlay in its definition (its QEMU,
  and any commit job, died), ``qemu-img commit`` merges it offline and
  the persistent definition is pointed back at Nova's file.

Both are idempotent, which is what lets recovery simply run them again
whatever step a crash interrupted: a commit job that outlived the agent
is waited for rather than restarted, and an offline commit leaves the
overlay intact until the definition no longer names it.
"""

import os
import time

import libvirt
from oslo_log import log as logging
from oslo_utils import excutils

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import exception
from snapmanager_nova.compute.backends import crashpoints
from snapmanager_nova.compute.backends import nova_files
from snapmanager_nova.compute.backends import overlay
from snapmanager_nova.privsep import fs

CONF = sm_conf.CONF
LOG = logging.getLogger(__name__)

# Overlays stacked on overlays only arise from bugs, but merging peels
# them off one commit at a time: a bound keeps it from looping.
MAX_ROUNDS = 4


def overlays_in(instance_uuid, xml):
    """([(target, overlay, file below)], {index}) of our overlays."""
    pending, indexes = [], set()
    for disk in overlay.domain_disks(xml):
        own = nova_files.own_overlay(instance_uuid, disk.source)
        if own:
            pending.append((disk.target, disk.source, disk.backing))
            indexes.add(own[1])
    return pending, indexes


def merge_domain(instance_uuid, dom):
    """Merge every overlay of ours the domain uses; return their indexes.

    A running domain is merged live. A shut-off one is merged offline
    when its persistent definition names an overlay.
    """
    merged = set()
    call = nova_files.call
    if call("domain state", dom.isActive):
        for _round in range(MAX_ROUNDS):
            xml = call("domain XML", dom.XMLDesc, 0)
            pending, indexes = overlays_in(instance_uuid, xml)
            if not pending:
                break
            commit_online(dom, pending)
            merged |= indexes
        live = overlay.domain_disks(call("domain XML", dom.XMLDesc, 0))
        fix_definition(
            dom, {disk.target: (disk.source, disk.format) for disk in live}
        )
    elif call("domain persistence", dom.isPersistent):
        for _round in range(MAX_ROUNDS):
            xml = call(
                "persistent domain XML",
                dom.XMLDesc,
                libvirt.VIR_DOMAIN_XML_INACTIVE,
            )
            pending, indexes = overlays_in(instance_uuid, xml)
            if not pending:
                break
            commit_offline(dom, pending)
            merged |= indexes
    return merged


def finish(instance_uuid, dom, pending):
    """Merge the overlays a snapshot just made, however the domain is.

    Only overlays the domain still uses are merged. Nova's hard reboot,
    or a stop and start, redefines the domain from Nova's records while
    the copy runs: the guest then writes into Nova's ``disk`` again, the
    copy is not of one instant, and the overlay, which no XML names any
    more, is removed. That raises DisksChanged; Nova's ``disk`` is left
    as Nova left it (a commit now would merge it into the ``_base`` file
    other instances share).
    """
    try:
        if nova_files.call("domain state", dom.isActive):
            lost = commit_online(dom, pending)
        else:
            # The guest powered off during the copy: QEMU, and the
            # chance of a live commit, went with it. What the definition
            # still names holds the guest's last writes and is merged.
            lost = _unused(dom, pending)
            LOG.warning(
                "%s stopped while its overlays were active; merging them "
                "offline",
                instance_uuid,
            )
            merge_domain(instance_uuid, dom)
    except exception.BackendError:
        with excutils.save_and_reraise_exception() as error:
            # libvirt refuses a commit whose overlay left the chain
            # between our last look and the call.
            lost = _unused(dom, pending)
            error.reraise = not lost
    if lost:
        orphans = _unused(dom, lost)
        for _target, path, _below in orphans:
            nova_files.remove(path)
        if len(orphans) < len(lost):
            # Still named, but not as the active layer over Nova's disk:
            # nothing to commit safely; recovery looks at it again.
            raise exception.BackendError(
                operation="block commit",
                origin="libvirt",
                origin_code=None,
                detail="an overlay is no longer the active layer over "
                "Nova's disk",
            )
        raise exception.DisksChanged(
            instance_uuid=instance_uuid,
            reason="the domain was redefined without the overlay on "
            + ", ".join(sorted(target for target, _p, _b in lost)),
        )


def _unused(dom, pending):
    """The entries of ``pending`` whose overlay no XML of the domain
    names: Nova redefined the domain and dropped them."""
    used = nova_files.used_files(dom)
    return [entry for entry in pending if entry[1] not in used]


def split_ours(dom, pending):
    """(still ours, lost) entries of ``pending``, from the live XML.

    Ours: the disk's active layer is the overlay and the file below it
    is the one expected. Anything else means the domain was redefined
    (by Nova) since ``pending`` was built, and nothing may be committed.
    """
    live = {
        disk.target: disk
        for disk in overlay.domain_disks(
            nova_files.call("domain XML", dom.XMLDesc, 0)
        )
    }
    ours, lost = [], []
    for entry in pending:
        target, path, below = entry
        disk = live.get(target)
        if disk is not None and disk.source == path and disk.backing == below:
            ours.append(entry)
        else:
            lost.append(entry)
    return ours, lost


def commit_online(dom, pending):
    """Merge overlays into the file below and pivot back to it.

    ``pending`` lists ``(target, overlay, below)``. The live XML is read
    again first and only overlays that are still the active layer over
    ``below`` are merged; afterwards the live and persistent XML name
    ``below`` and those overlay files are gone. Returns the entries that
    were not ours any more (left alone).
    """
    timeout = CONF.compute.call_timeout
    total = CONF.compute.copy_timeout
    deadline = time.monotonic() + total
    pending, lost = split_ours(dom, pending)
    if lost:
        LOG.warning(
            "%s no longer runs on overlays %s: not committing them",
            dom.UUIDString(),
            ", ".join(path for _target, path, _below in lost),
        )
    if not pending:
        return lost
    for target, path, below in pending:
        job = overlay.job_info(dom, target, timeout)
        if not job:
            overlay.start_commit(dom, target, path, below, timeout)
        elif (
            job.get("type") != libvirt.VIR_DOMAIN_BLOCK_JOB_TYPE_ACTIVE_COMMIT
        ):
            raise exception.BlockJobActive(
                instance_uuid=dom.UUIDString(),
                target=target,
                job_type=job.get("type"),
            )
    crashpoints.reached("commit-started")
    targets = [target for target, _overlay, _below in pending]
    overlay.wait_ready(dom, targets, deadline, timeout, total)
    crashpoints.reached("commit-ready")
    for target in targets:
        overlay.pivot(dom, target, deadline, timeout, total)
    live = {
        disk.target: disk
        for disk in overlay.domain_disks(
            nova_files.call("domain XML", dom.XMLDesc, 0)
        )
    }
    for target, _overlay, below in pending:
        if live[target].source != below:
            raise exception.BackendError(
                operation=f"pivot {target}",
                origin="libvirt",
                origin_code=None,
                detail=f"the disk runs on {live[target].source}, "
                f"not on {below}",
            )
    fix_definition(
        dom,
        {
            target: (live[target].source, live[target].format)
            for target in targets
        },
    )
    for _target, path, _below in pending:
        nova_files.remove(path)
    return lost


def commit_offline(dom, pending):
    """Merge the overlays of a shut-off domain with qemu-img.

    The domain stopped (or was stopped) while an overlay was active, so
    the persistent definition names the overlay, which holds the guest's
    latest writes.
    """
    sources = {}
    for target, path, _below in pending:
        info = nova_files.call(
            f"image info {target}", fs.image_info, path, "qcow2"
        )
        below = info.get("full-backing-filename")
        fmt = info.get("backing-filename-format")
        if (
            not below
            or fmt not in nova_files.FORMATS
            or os.path.dirname(below) != os.path.dirname(path)
        ):
            raise exception.BackendError(
                operation=f"offline commit {target}",
                origin="qemu-img",
                origin_code=None,
                detail=f"{path} is not over a disk of the instance",
            )
        nova_files.data_call(
            f"offline commit {target}", fs.commit_overlay, path, "qcow2"
        )
        sources[target] = (below, fmt)
    overlay.redefine_sources(dom, sources, CONF.compute.call_timeout)
    for _target, path, _below in pending:
        nova_files.remove(path)


def fix_definition(dom, sources):
    """Make the persistent XML name ``sources`` where it still names one
    of our overlays (libvirt normally updates it at the pivot)."""
    call = nova_files.call
    if not call("domain persistence", dom.isPersistent):
        return False
    inactive = overlay.domain_disks(
        call(
            "persistent domain XML",
            dom.XMLDesc,
            libvirt.VIR_DOMAIN_XML_INACTIVE,
        )
    )
    uuid = dom.UUIDString()
    stale = {
        disk.target: sources[disk.target]
        for disk in inactive
        if disk.target in sources
        and disk.source != sources[disk.target][0]
        and nova_files.own_overlay(uuid, disk.source)
    }
    if stale:
        LOG.warning(
            "Persistent definition of %s still named overlays: %s",
            uuid,
            ", ".join(sorted(stale)),
        )
        overlay.redefine_sources(dom, stale, CONF.compute.call_timeout)
    return bool(stale)
