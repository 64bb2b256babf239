"""External disk-only snapshots and the active commit that undoes them.

An external snapshot freezes each disk's current file by putting a new,
empty overlay on top of it: from then on the guest writes into the
overlay and the old file, Nova's ``disk``, is a read-only backing file
that can be copied at leisure. An active block commit then merges the
overlay back into ``disk`` while the guest runs, and the pivot makes
``disk`` the active layer again.

Overlays are named after the snapshot index, ``<disk>.snapmanager-<n>``
beside Nova's file, so an agent that starts after a crash recognises any
overlay still in a domain's XML, and the index it belongs to, without a
database.

The libvirt calls here are all bounded by the caller's timeouts; waiting
loops poll, because a ready or finished job is a state libvirt can be
asked about again after a crash, unlike an event that was missed.
"""

import collections
import io
import re
import time
from xml.etree import ElementTree

import libvirt
from oslo_log import log as logging

from snapmanager_nova import exception
from snapmanager_nova.compute import calls
from snapmanager_nova.compute import guest

LOG = logging.getLogger(__name__)

MARK = ".snapmanager-"
RESTORE_SUFFIX = MARK + "restore"
_OVERLAY = re.compile(r"^(?P<disk>.+)\.snapmanager-(?P<index>0|[1-9][0-9]*)$")

# Between polls of a block job. Commits of the small overlays a
# snapshot leaves finish in tens of milliseconds.
POLL_SECONDS = 0.01

SNAPSHOT_FLAGS = (
    libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY
    | libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC
    # No libvirt snapshot object: Nova undefines domains without
    # VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA, which metadata would break.
    | libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA
)
# ACTIVE: the top is the running layer. SHALLOW: merge into the layer
# just below the overlay (Nova's disk) and never further: without it
# libvirt would commit all the way down into the shared _base image.
COMMIT_FLAGS = (
    libvirt.VIR_DOMAIN_BLOCK_COMMIT_ACTIVE
    | libvirt.VIR_DOMAIN_BLOCK_COMMIT_SHALLOW
)

DiskSource = collections.namedtuple(
    "DiskSource", "target device type source format backing"
)


def overlay_name(disk_name, index):
    return f"{disk_name}{MARK}{index}"


def parse_overlay_name(name):
    """(Nova disk name, snapshot index) for an overlay name, else None."""
    match = _OVERLAY.match(name)
    if match is None:
        return None
    return match.group("disk"), int(match.group("index"))


def restore_name(name):
    return name + RESTORE_SUFFIX


def domain_disks(xml):
    """Every ``<disk>`` of a domain XML, Nova's or not, in order."""
    disks = []
    for element in ElementTree.fromstring(xml).findall("devices/disk"):
        source = element.find("source")
        driver = element.find("driver")
        backing = element.find("backingStore/source")
        disks.append(
            DiskSource(
                target=element.find("target").get("dev"),
                device=element.get("device", "disk"),
                type=element.get("type"),
                source=source.get("file") if source is not None else None,
                format=driver.get("type") if driver is not None else None,
                backing=backing.get("file") if backing is not None else None,
            )
        )
    return disks


def snapshot_xml(overlays, targets):
    """A disk-only snapshot of the disks in ``overlays`` (target: path).

    Every other disk of the domain (``targets``) is named with
    ``snapshot='no'``: libvirt would otherwise give it an overlay of its
    own choosing, on a volume or a config drive Snapmanager must not
    touch.
    """
    root = ElementTree.Element("domainsnapshot")
    disks = ElementTree.SubElement(root, "disks")
    for target in targets:
        disk = ElementTree.SubElement(disks, "disk", name=target)
        if target in overlays:
            disk.set("snapshot", "external")
            disk.set("type", "file")
            ElementTree.SubElement(disk, "driver", type="qcow2")
            ElementTree.SubElement(disk, "source", file=overlays[target])
        else:
            disk.set("snapshot", "no")
    return ElementTree.tostring(root, encoding="unicode")


def create(dom, xml, instance_uuid, policy, timeout):
    """Take the external snapshot; return whether the guest was quiesced.

    Quiescing goes through libvirt's QUIESCE flag rather than separate
    freeze and thaw calls: libvirt then thaws the guest itself even if
    this agent dies half way, and the overlays are created in the same
    frozen instant.
    """
    guest.validate_policy(policy)
    if policy != guest.QUIESCE_SKIP:
        try:
            calls.bounded(
                "quiesced disk-only snapshot",
                timeout,
                dom.snapshotCreateXML,
                xml,
                SNAPSHOT_FLAGS | libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE,
            )
            return True
        except exception.BackendError as exc:
            if not guest.cannot_freeze(exc):
                raise
            if policy == guest.QUIESCE_REQUIRE:
                raise guest.quiesce_failed(instance_uuid, exc) from exc
            LOG.info(
                "Guest of %s cannot be quiesced (%s); taking a "
                "crash-consistent snapshot",
                instance_uuid,
                exc.kwargs.get("detail"),
            )
    calls.bounded(
        "disk-only snapshot",
        timeout,
        dom.snapshotCreateXML,
        xml,
        SNAPSHOT_FLAGS,
    )
    return False


def job_info(dom, target, timeout):
    """The block job on ``target`` ({} when there is none)."""
    return calls.bounded(
        f"blockJobInfo {target}", timeout, dom.blockJobInfo, target, 0
    )


def start_commit(dom, target, top, base, timeout):
    """Commit ``top`` (our overlay, the active layer) into ``base``.

    Both are named rather than left to libvirt (the active layer and
    the one below it): if Nova redefined the domain since its XML was
    last read, ``top`` is no longer in the disk's chain and libvirt
    refuses, instead of merging Nova's ``disk`` into the ``_base`` file
    other instances share.
    """
    calls.bounded(
        f"blockCommit {target}",
        timeout,
        dom.blockCommit,
        target,
        base,
        top,
        0,
        COMMIT_FLAGS,
    )


def check_deadline(operation, deadline, timeout):
    if time.monotonic() > deadline:
        raise exception.BackendTimeout(
            operation=operation,
            timeout=timeout,
            origin="timeout",
            origin_code=None,
            detail="deadline passed",
        )


def wait_ready(dom, targets, deadline, timeout, total):
    """Wait until the active commit on each of ``targets`` caught up."""
    waiting = set(targets)
    while True:
        for target in sorted(waiting):
            info = job_info(dom, target, timeout)
            if not info:
                raise exception.BackendError(
                    operation=f"block commit {target}",
                    origin="libvirt",
                    origin_code=None,
                    detail="the job ended before it was ready to pivot",
                )
            if info["cur"] == info["end"]:
                waiting.discard(target)
        if not waiting:
            return
        check_deadline("block commit", deadline, total)
        time.sleep(POLL_SECONDS)


def pivot(dom, target, deadline, timeout, total):
    """Switch ``target`` back to the commit's base, retrying while QEMU
    says the job is not ready (libvirt error 83), which it may say even
    when the progress counters are equal."""
    while True:
        try:
            calls.bounded(
                f"pivot {target}",
                timeout,
                dom.blockJobAbort,
                target,
                libvirt.VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT,
            )
            return
        except exception.BackendError as exc:
            if (
                exc.kwargs.get("origin_code")
                != libvirt.VIR_ERR_BLOCK_COPY_ACTIVE
            ):
                raise
        check_deadline(f"pivot {target}", deadline, total)
        time.sleep(POLL_SECONDS)


def redefine_sources(dom, sources, timeout):
    """Point the persistent definition's disks at other files.

    ``sources`` maps a target to ``(path, format)``. Used when the
    persistent definition still names an overlay that is gone from the
    running domain, or of a shut-off domain whose overlay was committed
    offline; everything else in Nova's definition is kept as it is.
    """
    xml = calls.bounded(
        "persistent domain XML",
        timeout,
        dom.XMLDesc,
        libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE,
    )
    root = _parse_keeping_prefixes(xml)
    for element in root.findall("devices/disk"):
        target = element.find("target").get("dev")
        if target not in sources:
            continue
        path, fmt = sources[target]
        element.find("source").set("file", path)
        driver = element.find("driver")
        if driver is not None:
            driver.set("type", fmt)
        for backing in element.findall("backingStore"):
            element.remove(backing)
    conn = dom.connect()
    calls.bounded(
        "define domain",
        timeout,
        conn.defineXML,
        ElementTree.tostring(root, encoding="unicode"),
    )


def _parse_keeping_prefixes(xml):
    """Parse a domain XML so that writing it back keeps its prefixes.

    ElementTree names namespaces ``ns0``, ``ns1`` on output unless their
    prefixes are registered; Nova's metadata must come back as
    ``<nova:instance>``, as Nova wrote it.
    """
    for _event, (prefix, uri) in ElementTree.iterparse(
        io.StringIO(xml), events=("start-ns",)
    ):
        if prefix:
            try:
                ElementTree.register_namespace(prefix, uri)
            except ValueError:
                pass  # ns0-like prefixes are ElementTree's own
    return ElementTree.fromstring(xml)
