"""The privileged file operations refuse paths outside their trees.

The entrypoints run in-process here (privsep client mode off): the checks
are the daemon's own, whatever the caller asks.
"""

import os
import subprocess
import types

import pytest

from snapmanager_nova import exception
from snapmanager_nova import privsep
from snapmanager_nova.privsep import fs

UUID = "4d7c2a5e-51a3-4c53-9a39-1f0e9b7d2c11"


@pytest.fixture
def host(tmp_path, monkeypatch):
    instances = tmp_path / "instances"
    store = tmp_path / "store"
    (instances / UUID).mkdir(parents=True)
    (instances / "_base").mkdir()
    store.mkdir()
    (instances / UUID / "disk").write_bytes(b"nova data")
    # The daemon's own view of the configuration, for this test only
    # (global overrides would leak into other tests of the session).
    monkeypatch.setattr(
        fs,
        "CONF",
        types.SimpleNamespace(
            compute=types.SimpleNamespace(
                instances_path=str(instances), snapshot_store_path=str(store)
            )
        ),
    )
    was_client = privsep.sys_admin_pctxt.client_mode
    privsep.sys_admin_pctxt.set_client_mode(False)
    yield {"instances": instances, "store": store, "dir": instances / UUID}
    privsep.sys_admin_pctxt.set_client_mode(was_client)


def test_copy_to_store_and_back(host):
    stored = host["store"] / "disk"
    fs.copy_to_store(str(host["dir"] / "disk"), str(stored), os.getuid(), 0)
    assert stored.read_bytes() == b"nova data"
    assert stored.stat().st_mode & 0o777 == 0o600

    os.chmod(host["dir"] / "disk", 0o640)
    back = host["dir"] / "disk.snapmanager-restore"
    fs.copy_from_store(str(stored), str(back), str(host["dir"] / "disk"))
    assert back.read_bytes() == b"nova data"
    assert back.stat().st_mode & 0o777 == 0o640

    fs.replace(str(back), str(host["dir"] / "disk"))
    assert not back.exists()
    assert fs.file_state(str(back)) is None
    assert fs.file_state(str(host["dir"] / "disk"))[0] == len(b"nova data")


@pytest.mark.parametrize("path", ["/etc/passwd", "{store}/x", "{tmp}/x"])
def test_nova_side_paths_must_be_under_instances_path(host, path):
    path = path.format(store=host["store"], tmp=host["store"].parent)
    with pytest.raises(exception.PathNotAllowed):
        fs.copy_to_store(path, str(host["store"] / "y"), 0, 0)


def test_store_side_paths_must_be_under_the_store(host):
    with pytest.raises(exception.PathNotAllowed):
        fs.copy_to_store(
            str(host["dir"] / "disk"), str(host["dir"] / "copy"), 0, 0
        )
    with pytest.raises(exception.PathNotAllowed):
        fs.adopt_in_store("/etc/shadow", 0, 0)


def test_dot_dot_cannot_climb_out(host):
    sneaky = str(host["dir"] / ".." / ".." / "store" / "x")
    with pytest.raises(exception.PathNotAllowed):
        fs.remove(sneaky)


def test_symlinks_are_not_followed(host):
    link = host["dir"] / "disk.snapmanager-3"
    link.symlink_to("/etc/passwd")
    with pytest.raises(exception.PathNotAllowed, match="symbolic link"):
        fs.remove(str(link))
    assert link.is_symlink()


def test_only_snapmanager_files_are_removed(host):
    with pytest.raises(exception.PathNotAllowed, match="not a file"):
        fs.remove(str(host["dir"] / "disk"))
    assert (host["dir"] / "disk").exists()
    overlay_file = host["dir"] / "disk.snapmanager-3"
    overlay_file.write_bytes(b"")
    assert fs.remove(str(overlay_file)) is True
    assert fs.remove(str(overlay_file)) is False  # gone already


def test_only_snapmanager_files_replace_nova_files(host):
    (host["dir"] / "disk.local").write_bytes(b"other")
    with pytest.raises(exception.PathNotAllowed):
        fs.replace(str(host["dir"] / "disk.local"), str(host["dir"] / "disk"))


def test_replace_stays_in_one_directory(host):
    other = host["instances"] / "_base" / "disk.snapmanager-restore"
    other.write_bytes(b"")
    with pytest.raises(exception.PathNotAllowed, match="same directory"):
        fs.replace(str(other), str(host["dir"] / "disk"))


def test_copies_never_overwrite(host):
    target = host["dir"] / "disk.snapmanager-restore"
    target.write_bytes(b"")
    stored = host["store"] / "disk"
    stored.write_bytes(b"")
    with pytest.raises(exception.PathNotAllowed, match="already exists"):
        fs.copy_from_store(str(stored), str(target), str(host["dir"] / "disk"))


def test_list_own_files(host):
    (host["dir"] / "disk.snapmanager-3").write_bytes(b"")
    (host["dir"] / "disk.snapmanager-restore").write_bytes(b"")
    (host["dir"] / "console.log").write_bytes(b"")
    assert fs.list_own_files(str(host["dir"])) == [
        "disk.snapmanager-3",
        "disk.snapmanager-restore",
    ]
    assert fs.list_own_files(str(host["instances"] / "gone")) == []


def test_only_snapmanager_bitmaps_are_removed(host):
    disk = host["dir"] / "disk.qcow2"
    qemu_img = ["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "1M"]
    subprocess.run(qemu_img, check=True)
    for name in ("snapmanager-3", "nova-backup"):
        subprocess.run(
            ["qemu-img", "bitmap", "--add", "-f", "qcow2", str(disk), name],
            check=True,
        )
    with pytest.raises(exception.PathNotAllowed):
        fs.remove_bitmaps(str(disk), "qcow2", ["snapmanager-3", "nova-backup"])

    fs.remove_bitmaps(str(disk), "qcow2", ["snapmanager-3"])

    info = fs.image_info(str(disk), "qcow2")
    names = [b["name"] for b in info["format-specific"]["data"]["bitmaps"]]
    assert names == ["nova-backup"]
