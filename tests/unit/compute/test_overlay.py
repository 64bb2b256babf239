"""Overlay naming, the XML the qcow2 backend sends, and its retry loops."""

from unittest import mock
from xml.etree import ElementTree

import libvirt
import pytest

from snapmanager_nova import exception
from snapmanager_nova.compute.backends import backup
from snapmanager_nova.compute.backends import overlay

UUID = "4d7c2a5e-51a3-4c53-9a39-1f0e9b7d2c11"


def libvirt_error(code):
    error = libvirt.libvirtError("test error")
    error.err = (code, 0, "test error", 2, "", None, None, 0, 0)
    return error


@pytest.mark.parametrize(
    "name,parsed",
    [
        ("disk.snapmanager-7", ("disk", 7)),
        ("disk.local.snapmanager-0", ("disk.local", 0)),
        ("disk.snapmanager-restore", None),
        ("disk.snapmanager-07", None),
        ("disk", None),
        ("disk.snapmanager-", None),
    ],
)
def test_overlay_names(name, parsed):
    assert overlay.parse_overlay_name(name) == parsed


def test_overlay_name_round_trips():
    name = overlay.overlay_name("disk.local", 12)
    assert name == "disk.local.snapmanager-12"
    assert overlay.parse_overlay_name(name) == ("disk.local", 12)
    assert overlay.restore_name("disk") == "disk.snapmanager-restore"


def test_snapshot_xml_leaves_every_other_disk_alone():
    xml = overlay.snapshot_xml(
        {"vda": "/i/u/disk.snapmanager-3"}, ["vda", "vdb", "sda"]
    )
    disks = ElementTree.fromstring(xml).findall("disks/disk")
    assert [(d.get("name"), d.get("snapshot")) for d in disks] == [
        ("vda", "external"),
        ("vdb", "no"),
        ("sda", "no"),
    ]
    assert disks[0].find("source").get("file") == "/i/u/disk.snapmanager-3"
    assert disks[0].find("driver").get("type") == "qcow2"


def test_backup_xml_leaves_every_other_disk_alone():
    xml = backup.backup_xml(
        {"vdb": "/s/u/1.partial/disk.local"}, ["vda", "vdb"]
    )
    root = ElementTree.fromstring(xml)
    assert root.get("mode") == "push"
    disks = root.findall("disks/disk")
    assert [(d.get("name"), d.get("backup")) for d in disks] == [
        ("vda", "no"),
        ("vdb", "yes"),
    ]
    assert disks[1].get("backupmode") == "full"
    assert disks[1].find("target").get("file") == "/s/u/1.partial/disk.local"


DOMAIN = f"""\
<domain type='qemu'>
  <uuid>{UUID}</uuid>
  <metadata>
    <nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
      <nova:name>web-1</nova:name>
    </nova:instance>
  </metadata>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/i/{UUID}/disk.snapmanager-4'/>
      <backingStore type='file'>
        <format type='qcow2'/>
        <source file='/i/{UUID}/disk'/>
      </backingStore>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <target dev='sda' bus='sata'/>
    </disk>
  </devices>
</domain>
"""


def test_domain_disks_lists_sources_and_backing():
    vda, sda = overlay.domain_disks(DOMAIN)
    assert vda == overlay.DiskSource(
        target="vda",
        device="disk",
        type="file",
        source=f"/i/{UUID}/disk.snapmanager-4",
        format="qcow2",
        backing=f"/i/{UUID}/disk",
    )
    assert (sda.target, sda.device, sda.source) == ("sda", "cdrom", None)


def test_redefine_sources_keeps_nova_metadata_as_written():
    dom = mock.Mock()
    dom.XMLDesc.return_value = DOMAIN
    overlay.redefine_sources(dom, {"vda": (f"/i/{UUID}/disk", "raw")}, 10)

    flags = dom.XMLDesc.call_args.args[0]
    assert flags & libvirt.VIR_DOMAIN_XML_INACTIVE
    assert flags & libvirt.VIR_DOMAIN_XML_SECURE
    xml = dom.connect.return_value.defineXML.call_args.args[0]
    assert "<nova:instance" in xml and "<nova:name>web-1" in xml
    (vda, _sda) = ElementTree.fromstring(xml).findall("devices/disk")
    assert vda.find("source").get("file") == f"/i/{UUID}/disk"
    assert vda.find("driver").get("type") == "raw"
    assert vda.find("backingStore") is None


def test_pivot_retries_while_the_job_is_not_ready():
    dom = mock.Mock()
    dom.blockJobAbort.side_effect = [
        libvirt_error(libvirt.VIR_ERR_BLOCK_COPY_ACTIVE),
        libvirt_error(libvirt.VIR_ERR_BLOCK_COPY_ACTIVE),
        0,
    ]
    overlay.pivot(dom, "vda", float("inf"), 10, 10)
    assert dom.blockJobAbort.call_count == 3
    dom.blockJobAbort.assert_called_with(
        "vda", libvirt.VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT
    )


def test_pivot_gives_up_at_the_deadline():
    dom = mock.Mock()
    dom.blockJobAbort.side_effect = libvirt_error(
        libvirt.VIR_ERR_BLOCK_COPY_ACTIVE
    )
    with pytest.raises(exception.BackendTimeout):
        overlay.pivot(dom, "vda", 0, 10, 10)


def test_pivot_does_not_retry_other_errors():
    dom = mock.Mock()
    dom.blockJobAbort.side_effect = libvirt_error(
        libvirt.VIR_ERR_OPERATION_INVALID
    )
    with pytest.raises(exception.BackendError) as raised:
        overlay.pivot(dom, "vda", float("inf"), 10, 10)
    assert (
        raised.value.kwargs["origin_code"] == libvirt.VIR_ERR_OPERATION_INVALID
    )
    assert dom.blockJobAbort.call_count == 1


def test_wait_ready_fails_when_the_job_vanished():
    dom = mock.Mock()
    dom.blockJobInfo.return_value = {}
    with pytest.raises(exception.BackendError, match="ended before"):
        overlay.wait_ready(dom, ["vda"], float("inf"), 10, 10)


def test_wait_ready_polls_every_disk_until_caught_up():
    dom = mock.Mock()
    progress = {
        "vda": [
            {"type": 4, "cur": 1, "end": 5},
            {"type": 4, "cur": 5, "end": 5},
        ],
        "vdb": [{"type": 4, "cur": 3, "end": 3}],
    }
    dom.blockJobInfo.side_effect = lambda target, flags: (
        progress[target].pop(0)
        if len(progress[target]) > 1
        else progress[target][0]
    )
    overlay.wait_ready(dom, ["vda", "vdb"], float("inf"), 10, 10)


def test_quiesce_falls_back_only_when_the_guest_cannot_freeze():
    dom = mock.Mock()
    dom.snapshotCreateXML.side_effect = [
        libvirt_error(libvirt.VIR_ERR_AGENT_UNRESPONSIVE),
        None,
    ]
    assert overlay.create(dom, "<x/>", UUID, "prefer", 10) is False
    first, second = dom.snapshotCreateXML.call_args_list
    assert first.args[1] & libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE
    assert second.args[1] == overlay.SNAPSHOT_FLAGS
    assert second.args[1] & libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA


def test_quiesce_require_fails_with_the_code():
    dom = mock.Mock()
    dom.snapshotCreateXML.side_effect = libvirt_error(
        libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED
    )
    with pytest.raises(exception.QuiesceFailed, match="74"):
        overlay.create(dom, "<x/>", UUID, "require", 10)
    assert dom.snapshotCreateXML.call_count == 1


def test_other_snapshot_errors_are_not_papered_over():
    dom = mock.Mock()
    dom.snapshotCreateXML.side_effect = libvirt_error(
        libvirt.VIR_ERR_OPERATION_FAILED
    )
    with pytest.raises(exception.BackendError):
        overlay.create(dom, "<x/>", UUID, "prefer", 10)
    assert dom.snapshotCreateXML.call_count == 1


def test_skip_never_asks_to_quiesce():
    dom = mock.Mock()
    assert overlay.create(dom, "<x/>", UUID, "skip", 10) is False
    dom.snapshotCreateXML.assert_called_once_with(
        "<x/>", overlay.SNAPSHOT_FLAGS
    )


def test_commit_is_shallow():
    # Never into Nova's shared _base.
    assert overlay.COMMIT_FLAGS & libvirt.VIR_DOMAIN_BLOCK_COMMIT_SHALLOW
    assert overlay.COMMIT_FLAGS & libvirt.VIR_DOMAIN_BLOCK_COMMIT_ACTIVE
