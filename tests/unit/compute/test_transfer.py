"""The pure and local parts of copying a snapshot between hosts' stores
(compute/transfer.py); the copy over ssh between real agents is in
tests/functional/conductor/test_snapshot_transfer.py."""

import json
import os
import uuid

import pytest

from snapmanager_nova import exception
from snapmanager_nova.compute import transfer
from snapmanager_nova.compute.backends import store as store_mod

UUID = str(uuid.uuid4())


@pytest.mark.parametrize(
    "relative",
    [
        "_base/abc123",
        f"{UUID}/3/disk",
        f"{UUID}/3/disk.local",
        f"{UUID}/3/manifest.json",
    ],
)
def test_store_files_are_accepted(relative):
    assert transfer.check_relative(relative) == relative


@pytest.mark.parametrize(
    "relative",
    [
        "../etc/passwd",
        "_base/../x",
        "_base/a/b",
        f"{UUID}/3/../../x",
        f"{UUID}/three/disk",
        "not-a-uuid/3/disk",
        f"/{UUID}/3/disk",
        f"{UUID}/3/disk;rm -rf",
        ".incoming/x",
    ],
)
def test_anything_else_is_refused(relative):
    with pytest.raises(exception.Invalid):
        transfer.check_relative(relative)


def test_ssh_transport_is_scp_without_a_shell():
    argv = transfer.copy_command(
        "ssh", "host-a", "/store/_base/x", "/dest/_base/x", "/etc/cfg"
    )
    assert argv == [
        "scp",
        "-p",
        "-F",
        "/etc/cfg",
        "-o",
        "BatchMode=yes",
        "host-a:/store/_base/x",
        "/dest/_base/x",
    ]


def test_rsync_transport_keeps_paths_from_the_remote_shell():
    argv = transfer.copy_command("rsync", "host-a", "/s/f", "/d/f")
    assert argv[:4] == ["rsync", "--archive", "--sparse", "--protect-args"]
    assert argv[4:] == ["-e", "ssh -o BatchMode=yes", "host-a:/s/f", "/d/f"]


def test_an_unknown_transport_is_refused():
    with pytest.raises(exception.Invalid):
        transfer.copy_command("ftp", "host-a", "/s/f", "/d/f")


def test_interrupted_transfers_are_removed_at_start(tmp_path):
    store = store_mod.Store(str(tmp_path))
    staging = transfer.staging_dir(store, UUID, 2)
    os.makedirs(staging)
    with open(os.path.join(staging, "disk"), "wb") as stream:
        stream.write(b"half")
    assert transfer.clean_incoming(store) == [f"{UUID}.2"]
    assert not os.path.exists(staging)
    assert transfer.clean_incoming(store) == []


def _staged(store, files):
    staging = transfer.staging_dir(store, UUID, 2)
    for relative, data in files.items():
        path = os.path.join(staging, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as stream:
            stream.write(data)
    return staging


def test_publishing_lists_the_snapshot_only_once_whole(tmp_path):
    store = store_mod.Store(str(tmp_path / "store"))
    manifest = json.dumps(
        {"disks": [{"name": "disk"}], "bases": ["b1"], "index": 2}
    )
    files = {
        "_base/b1": "base",
        f"{UUID}/2/disk": "layer",
        f"{UUID}/2/manifest.json": manifest,
    }
    staging = _staged(store, files)
    assert store.list_indexes(UUID) == []
    transfer._publish(store, staging, list(files))
    assert store.list_indexes(UUID) == [2]
    assert os.path.exists(store.base_path("b1"))
    # Nothing of it is left to collect as unreferenced.
    assert store.referenced_bases() == {"b1"}


def test_manifests_name_this_stores_paths(tmp_path):
    store = store_mod.Store(str(tmp_path / "store"))
    manifest = {
        "disks": [
            {
                "name": "disk",
                "path": f"/remote/store/{UUID}/2/disk",
                "backing": {"stored_path": "/remote/store/_base/b1"},
            }
        ],
        "note": "/elsewhere/kept",
    }
    staging = _staged(store, {f"{UUID}/2/manifest.json": json.dumps(manifest)})
    transfer._rewrite_manifests(store, staging, "/remote/store")
    with open(
        os.path.join(staging, UUID, "2", "manifest.json"), encoding="utf-8"
    ) as stream:
        rewritten = json.load(stream)
    disk = rewritten["disks"][0]
    assert disk["path"] == os.path.join(store.root, UUID, "2", "disk")
    assert disk["backing"]["stored_path"] == store.base_path("b1")
    assert rewritten["note"] == "/elsewhere/kept"


def test_a_snapshot_already_here_is_not_fetched_again(tmp_path):
    store = store_mod.Store(str(tmp_path / "store"))
    files = {f"{UUID}/2/manifest.json": "{}"}
    transfer._publish(store, _staged(store, files), list(files))
    source = {"address": "nowhere", "root": "/r", "files": ["../../x"]}
    assert transfer.fetch(store, UUID, 2, source, "ssh", 10) == 0


def test_a_list_without_the_snapshots_manifest_is_refused(tmp_path):
    store = store_mod.Store(str(tmp_path / "store"))
    source = {"address": "a", "root": "/r", "files": [f"{UUID}/2/disk"]}
    with pytest.raises(exception.Invalid):
        transfer.fetch(store, UUID, 2, source, "ssh", 10)
