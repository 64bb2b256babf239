"""Point-in-time copies through libvirt's backup API (push mode).

QEMU copies each disk as it was when the job started into a target file,
intercepting guest writes to areas not copied yet (copy-before-write):
the domain's disks never change files, so Nova's view of them is never
wrong, not even for a moment.

The ``backup`` mode takes full backups only. The ``incremental`` mode
also creates a checkpoint with the job and copies only what changed
since the previous one, into a target that the agent made beforehand
over the previous stored copy; libvirt's record of the checkpoint never
stays on the domain (see :mod:`.checkpoints`).
"""

import os
import time
from xml.etree import ElementTree

import libvirt
from oslo_log import log as logging

from snapmanager_nova import exception
from snapmanager_nova.compute import calls
from snapmanager_nova.compute.backends import overlay

LOG = logging.getLogger(__name__)

# A full copy of a real disk takes seconds to minutes: poll gently.
POLL_SECONDS = 0.02


def supported(dom):
    return hasattr(dom, "backupBegin")


def backup_xml(targets, all_targets, incremental=None):
    """A push backup of the disks in ``targets`` (target: file path).

    Every other disk is listed with ``backup='no'``: libvirt would
    otherwise back it up to a file of its own choosing. With
    ``incremental`` (a checkpoint name) only the areas written since
    that checkpoint are copied, into targets that already exist.
    """
    root = ElementTree.Element("domainbackup", mode="push")
    if incremental:
        ElementTree.SubElement(root, "incremental").text = incremental
    disks = ElementTree.SubElement(root, "disks")
    for target in all_targets:
        disk = ElementTree.SubElement(disks, "disk", name=target)
        if target in targets:
            disk.set("backup", "yes")
            disk.set("type", "file")
            if not incremental:
                disk.set("backupmode", "full")
            ElementTree.SubElement(disk, "driver", type="qcow2")
            ElementTree.SubElement(disk, "target", file=targets[target])
        else:
            disk.set("backup", "no")
    return ElementTree.tostring(root, encoding="unicode")


def begin(dom, xml, timeout, checkpoint_xml=None, reuse=False):
    """Start the job; the point in time is fixed when this returns.

    ``checkpoint_xml`` creates a checkpoint at that same point;
    ``reuse``: the targets exist already (made by the caller, over the
    previous copy) and libvirt writes into them as they are.
    """
    flags = libvirt.VIR_DOMAIN_BACKUP_BEGIN_REUSE_EXTERNAL if reuse else 0
    calls.bounded(
        "backupBegin", timeout, dom.backupBegin, xml, checkpoint_xml, flags
    )


def _job_type(dom, timeout):
    return calls.bounded("jobInfo", timeout, dom.jobInfo)[0]


def wait(dom, deadline, timeout, total):
    """Wait for the backup job to end; raise unless it succeeded."""
    while _job_type(dom, timeout) != libvirt.VIR_DOMAIN_JOB_NONE:
        if time.monotonic() > deadline:
            abort(dom, timeout)
            raise exception.BackendTimeout(
                operation="backup",
                timeout=total,
                origin="timeout",
                origin_code=None,
                detail="deadline passed",
            )
        time.sleep(POLL_SECONDS)
    stats = calls.bounded(
        "completed job stats",
        timeout,
        dom.jobStats,
        libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED,
    )
    if (
        stats.get("operation") != libvirt.VIR_DOMAIN_JOB_OPERATION_BACKUP
        or stats.get("type") != libvirt.VIR_DOMAIN_JOB_COMPLETED
    ):
        raise exception.BackendError(
            operation="backup",
            origin="libvirt",
            origin_code=None,
            detail=stats.get("errmsg") or f"job ended as {stats!r}",
        )


def abort(dom, timeout):
    try:
        calls.bounded("abort backup", timeout, dom.abortJob)
    except exception.BackendError as exc:
        # Already over: nothing to abort.
        LOG.debug("Aborting the backup job: %s", exc)


def targets_of_running_job(dom, timeout):
    """Target files of the backup job running on ``dom``, if any."""
    if _job_of_running_domain(dom, timeout) == libvirt.VIR_DOMAIN_JOB_NONE:
        return []
    try:
        xml = calls.bounded("backup XML", timeout, dom.backupGetXMLDesc, 0)
    except exception.BackendError as exc:
        if exc.kwargs.get("origin_code") == libvirt.VIR_ERR_NO_DOMAIN_BACKUP:
            return []  # some other job (a migration): not ours
        raise
    return [
        element.get("file")
        for element in ElementTree.fromstring(xml).findall("disks/disk/target")
        if element.get("file")
    ]


def _job_of_running_domain(dom, timeout):
    """The domain's job type, the clean-up's way: none once the domain
    no longer runs."""
    try:
        return _job_type(dom, timeout)
    except exception.BackendError as exc:
        if _stopped(dom, timeout, exc):
            # Nova stopped or destroyed it (a hard reboot): the job
            # ended with its QEMU, and libvirt refuses to talk of jobs.
            return libvirt.VIR_DOMAIN_JOB_NONE
        raise


def _stopped(dom, timeout, exc):
    """Whether ``exc`` (from a job query) is libvirt's answer for a
    domain that no longer runs, and it indeed does not."""
    code = exc.kwargs.get("origin_code")
    if code == libvirt.VIR_ERR_NO_DOMAIN:
        return True
    if code != libvirt.VIR_ERR_OPERATION_INVALID:
        return False
    try:
        return not calls.bounded("domain state", timeout, dom.isActive)
    except exception.BackendError as again:
        return again.kwargs.get("origin_code") == libvirt.VIR_ERR_NO_DOMAIN


def abort_if_writing_under(dom, root, timeout):
    """Abort a backup job that writes into ``root``; True if one did."""
    root = os.path.realpath(root)
    files = targets_of_running_job(dom, timeout)
    if not any(
        os.path.commonpath([os.path.realpath(path), root]) == root
        for path in files
    ):
        return False
    abort(dom, timeout)
    deadline = time.monotonic() + timeout
    while _job_of_running_domain(dom, timeout) != libvirt.VIR_DOMAIN_JOB_NONE:
        overlay.check_deadline("abort backup", deadline, timeout)
        time.sleep(POLL_SECONDS)
    return True
