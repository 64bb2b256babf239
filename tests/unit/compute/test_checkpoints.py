"""The incremental mode's checkpoint XML and bitmap names (pure logic)."""

from xml.etree import ElementTree

from snapmanager_nova.compute.backends import backup
from snapmanager_nova.compute.backends import checkpoints


def disks(xml):
    return {
        disk.get("name"): dict(disk.attrib)
        for disk in ElementTree.fromstring(xml).findall("disks/disk")
    }


def test_names_round_trip_and_foreign_names_are_not_ours():
    assert checkpoints.name(12) == "snapmanager-12"
    assert checkpoints.parse_name("snapmanager-12") == 12
    assert checkpoints.parse_name("snapmanager-x") is None
    assert checkpoints.parse_name("backup-vda") is None


def test_every_disk_is_named_and_only_ours_get_a_bitmap():
    xml = checkpoints.checkpoint_xml("snapmanager-3", ["vda"], ["vda", "sda"])
    assert disks(xml) == {
        "vda": {"name": "vda", "checkpoint": "bitmap"},
        "sda": {"name": "sda", "checkpoint": "no"},
    }
    assert ElementTree.fromstring(xml).find("creationTime") is None


def test_a_redefinition_names_the_bitmap_and_a_creation_time():
    xml = checkpoints.checkpoint_xml(
        "snapmanager-3", ["vda"], ["vda"], redefine=True
    )
    root = ElementTree.fromstring(xml)
    assert root.find("name").text == "snapmanager-3"
    assert root.find("creationTime").text
    assert disks(xml)["vda"]["bitmap"] == "snapmanager-3"


def test_incremental_backup_xml_names_the_checkpoint():
    xml = backup.backup_xml({"vda": "/s/1/disk"}, ["vda", "sda"], "cp-1")
    root = ElementTree.fromstring(xml)
    assert root.find("incremental").text == "cp-1"
    assert "backupmode" not in disks(xml)["vda"]
    assert disks(xml)["sda"]["backup"] == "no"
    full = backup.backup_xml({"vda": "/s/1/disk"}, ["vda"])
    assert ElementTree.fromstring(full).find("incremental") is None
    assert disks(full)["vda"]["backupmode"] == "full"


def test_our_bitmaps_in_image_info():
    info = {
        "format-specific": {
            "data": {
                "bitmaps": [
                    {"name": "snapmanager-2", "flags": ["in-use", "auto"]},
                    {"name": "snapmanager-1", "flags": ["auto"]},
                    {"name": "someone-else", "flags": ["in-use"]},
                ]
            }
        }
    }
    assert checkpoints.our_bitmaps(info) == ["snapmanager-1", "snapmanager-2"]
    assert checkpoints.our_bitmaps(info, in_use_only=True) == ["snapmanager-2"]
    assert checkpoints.our_bitmaps({"format-specific": {"data": {}}}) == []
