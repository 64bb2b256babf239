"""The snapshot store's layout and bookkeeping, on a temporary directory."""

import json
import os
import subprocess
import threading

import pytest

from snapmanager_nova import exception
from snapmanager_nova import qemu_img
from snapmanager_nova.compute.backends import store as store_mod

UUID = "4d7c2a5e-51a3-4c53-9a39-1f0e9b7d2c11"
OTHER = "9e0f3b1c-2a4d-4e5f-8a6b-7c8d9e0f1a2b"


@pytest.fixture
def store(tmp_path):
    return store_mod.Store(str(tmp_path / "snapshots"))


def fake_copy(content=b"base"):
    copied = []

    def copy_base(name, destination):
        copied.append(name)
        with open(destination, "wb") as stream:
            stream.write(content)

    copy_base.copied = copied
    return copy_base


def take(store, uuid, index, bases=("b1",), copy=None, files=("disk",)):
    partial = store.begin(uuid, index, list(bases), copy or fake_copy())
    for name in files:
        with open(os.path.join(partial, name), "wb") as stream:
            stream.write(b"x" * 4096)
    return store.finish(
        partial, {"disks": list(files), "bases": sorted(bases)}
    )


def test_layout_names(store):
    assert store.snapshot_dir(UUID, 3) == os.path.join(store.root, UUID, "3")
    assert store.partial_dir(UUID, 3) == os.path.join(
        store.root, UUID, "3.partial"
    )
    assert store.base_path("abc123") == os.path.join(
        store.root, "_base", "abc123"
    )


@pytest.mark.parametrize(
    "bad", ["../etc", "a/b", "", ".hidden", "manifest.json", "_base"]
)
def test_names_that_could_escape_are_refused(store, bad):
    with pytest.raises(exception.Invalid):
        store.base_path(bad)


@pytest.mark.parametrize("bad", ["..", "x/../../y", "not-a-uuid"])
def test_instance_must_be_a_uuid(store, bad):
    with pytest.raises(exception.Invalid):
        store.snapshot_dir(bad, 1)


@pytest.mark.parametrize("bad", [-1, "1", True, 1.5])
def test_index_must_be_a_natural_number(store, bad):
    with pytest.raises(exception.Invalid):
        store.snapshot_dir(UUID, bad)


def test_only_finished_snapshots_are_listed(store):
    assert store.list_indexes(UUID) == []
    take(store, UUID, 2)
    take(store, UUID, 10)
    partial = store.begin(UUID, 11, ["b1"], fake_copy())
    assert os.path.basename(partial) == "11.partial"
    # A directory without a manifest (not ours) is not a snapshot either.
    os.mkdir(os.path.join(store.root, UUID, "12"))

    assert store.list_indexes(UUID) == [2, 10]
    assert store.partials() == [(UUID, 11, partial)]
    assert store.read_partial_manifest(partial)["bases"] == ["b1"]
    assert store.read_manifest(UUID, 2)["disks"] == ["disk"]
    with pytest.raises(exception.StoredSnapshotNotFound):
        store.read_manifest(UUID, 11)


def mode_of(path):
    return os.stat(path).st_mode & 0o777


def test_store_files_are_private(store):
    final = take(store, UUID, 1)
    # Others (QEMU's user) may pass through to a backup target, not list.
    assert mode_of(store.root) == 0o711
    assert mode_of(os.path.dirname(final)) == 0o711
    assert mode_of(os.path.join(store.root, store_mod.BASE_DIR)) == 0o700
    assert mode_of(final) == 0o700
    manifest = os.path.join(final, store_mod.MANIFEST)
    assert mode_of(manifest) == 0o600


def test_only_a_backup_partial_lets_qemu_through(store):
    closed = store.begin(UUID, 1, [], fake_copy())
    open_ = store.begin(UUID, 2, [], fake_copy(), qemu_writes=True)
    assert mode_of(closed) == 0o700
    assert mode_of(open_) == 0o711
    final = store.finish(open_, {"disks": []})
    assert mode_of(final) == 0o700


def test_an_existing_private_root_is_opened_for_qemu(store):
    os.makedirs(store.root, 0o700)
    os.chmod(store.root, 0o700)
    take(store, UUID, 1)
    assert mode_of(store.root) == 0o711


def test_base_is_copied_once_and_shared(store):
    copy = fake_copy()
    take(store, UUID, 1, copy=copy)
    take(store, UUID, 2, copy=copy)
    take(store, OTHER, 1, copy=copy)
    assert copy.copied == ["b1"]
    assert sorted(os.listdir(os.path.join(store.root, "_base"))) == ["b1"]


def test_base_is_dropped_with_the_last_snapshot_using_it(store):
    take(store, UUID, 1, bases=("b1", "b2"))
    take(store, OTHER, 1, bases=("b1",))
    base_dir = os.path.join(store.root, "_base")

    freed = store.remove(UUID, 1)
    assert sorted(os.listdir(base_dir)) == ["b1"]
    assert freed > 0
    assert not os.path.exists(store.instance_dir(UUID))

    store.remove(OTHER, 1)
    assert os.listdir(base_dir) == []


def test_remove_is_idempotent(store):
    take(store, UUID, 1)
    assert store.remove(UUID, 1) > 0
    assert store.remove(UUID, 1) == 0
    assert store.remove(OTHER, 5) == 0


def test_a_partial_snapshot_keeps_its_base(store):
    take(store, UUID, 1)
    partial = store.begin(OTHER, 1, ["b1"], fake_copy())
    store.remove(UUID, 1)
    # The snapshot being written still needs b1.
    assert os.path.exists(store.base_path("b1"))
    store.discard(partial)
    assert store.partials() == []
    assert store.collect_bases() > 0
    assert not os.path.exists(store.base_path("b1"))


def test_base_collected_meanwhile_is_copied_again(store):
    take(store, UUID, 1)
    calls = []

    def copy_base(name, destination):
        calls.append(name)
        with open(destination, "wb") as stream:
            stream.write(b"base")

    real_lock = store.lock
    collected = []

    def lock():
        # The last snapshot using b1 is deleted between our check for
        # the base and the reference under the lock.
        if not collected:
            collected.append(True)
            store.remove(UUID, 1)
        return real_lock()

    store.lock = lock
    partial = store.begin(OTHER, 1, ["b1"], copy_base)
    assert calls == ["b1"]
    assert os.path.exists(store.base_path("b1"))
    assert os.path.isdir(partial)


def test_unreadable_manifest_keeps_every_base(store):
    take(store, UUID, 1)
    partial = store.begin(OTHER, 1, ["b1"], fake_copy())
    with open(os.path.join(partial, store_mod.MANIFEST), "w") as stream:
        stream.write('{"bases": [')  # cut short by a crash
    store.remove(UUID, 1)
    assert os.path.exists(store.base_path("b1"))


def test_partial_base_copies_are_left_to_recovery(store):
    take(store, UUID, 1)
    leftover = store.base_path("b1") + ".partial-12345678"
    with open(leftover, "wb") as stream:
        stream.write(b"half")
    store.remove(UUID, 1)
    assert os.path.exists(leftover)
    assert store.remove_partial_bases() == ["b1.partial-12345678"]
    assert not os.path.exists(leftover)


def test_finish_refuses_an_existing_index(store):
    take(store, UUID, 1)
    with pytest.raises(exception.SnapshotIndexInUse):
        store.begin(UUID, 1, [], fake_copy())


def test_discard_only_takes_partial_directories(store):
    final = take(store, UUID, 1)
    with pytest.raises(exception.Invalid):
        store.discard(final)


def test_manifest_is_written_whole(store):
    final = take(store, UUID, 4)
    with open(os.path.join(final, store_mod.MANIFEST)) as stream:
        data = json.load(stream)
    assert data["version"] == store_mod.MANIFEST_VERSION
    assert not [n for n in os.listdir(final) if n.endswith(".tmp")]


def test_lock_excludes_other_threads(store):
    inside = []
    overlap = []

    def hold():
        with store.lock():
            inside.append(1)
            if len(inside) > 1:
                overlap.append(True)
            threading.Event().wait(0.02)
            inside.pop()

    threads = [threading.Thread(target=hold) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlap == []


def test_allocated_bytes_ignores_holes(tmp_path):
    sparse = tmp_path / "sparse"
    with open(sparse, "wb") as stream:
        stream.seek(64 * 1024 * 1024)
        stream.write(b"x")
    assert store_mod.allocated_bytes(str(sparse)) < 1024 * 1024
    assert store_mod.allocated_bytes(str(tmp_path / "missing")) == 0


# Chains (incremental mode), with real qcow2 files and qemu-img.


def qemu_io(path, command, read_only=False):
    argv = ["qemu-io", "-f", "qcow2"] + (["-r"] if read_only else [])
    return subprocess.run(
        [*argv, "-c", command, path], capture_output=True, text=True
    )


def reads(path, pattern, offset):
    return qemu_io(path, f"read -P {pattern} {offset} 64k", True).returncode


def take_link(store, index, parent):
    """Snapshot ``index``: a qcow2 over ``parent``'s, with its own write."""
    partial = store.begin(UUID, index, [], fake_copy())
    path = os.path.join(partial, "disk")
    if parent is None:
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", path, "4M"],
            check=True,
        )
    else:
        qemu_img.create_over(path, f"../{parent}/disk", "qcow2")
    qemu_io(path, f"write -P {index} {index * 64}k 64k")
    disk = {"name": "disk", "allocated_bytes": 0, "parent": parent}
    store.finish(
        partial,
        {"disks": [disk], "bases": [], "parent": parent, "size_bytes": 0},
    )
    return os.path.join(store.snapshot_dir(UUID, index), "disk")


def commit(path):
    qemu_img.commit(path, "qcow2")


def assert_snapshot(store, index, written):
    path = os.path.join(store.snapshot_dir(UUID, index), "disk")
    for n in range(1, 5):
        expected = n if n in written else 0
        assert reads(path, expected, f"{n * 64}k") == 0, (index, n)


@pytest.fixture
def chain(store):
    for index, parent in ((1, None), (2, 1), (3, 2), (4, 3)):
        take_link(store, index, parent)
    return store


def test_chain_files_lists_parents_first(chain):
    assert chain.chain(UUID, 3) == [3, 2, 1]
    files = chain.chain_files(UUID, 3)
    assert files == [
        os.path.join(chain.snapshot_dir(UUID, n), name)
        for n in (1, 2, 3)
        for name in ("disk", "manifest.json")
    ]
    assert chain.child_of(UUID, 2) == 3
    assert chain.child_of(UUID, 4) is None


def test_merging_a_middle_snapshot_keeps_the_others(chain):
    freed = chain.merge_into_child(UUID, 2, 3, commit)

    assert freed >= 0
    assert chain.list_indexes(UUID) == [1, 3, 4]
    assert chain.read_manifest(UUID, 3)["parent"] == 1
    assert chain.read_manifest(UUID, 3)["disks"][0]["parent"] == 1
    assert_snapshot(chain, 1, {1})
    assert_snapshot(chain, 3, {1, 2, 3})
    assert_snapshot(chain, 4, {1, 2, 3, 4})
    assert not os.path.exists(chain.snapshot_dir(UUID, 2))


def test_merging_the_oldest_makes_its_child_whole(chain):
    chain.merge_into_child(UUID, 1, 2, commit)

    assert chain.chain(UUID, 4) == [4, 3, 2]
    assert chain.read_manifest(UUID, 2)["parent"] is None
    assert_snapshot(chain, 2, {1, 2})
    assert_snapshot(chain, 4, {1, 2, 3, 4})


def test_a_merge_cut_short_is_finished(chain):
    def crash(path):
        commit(path)
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        chain.merge_into_child(UUID, 2, 3, crash)
    # No longer listed, yet still holding what 3 reads.
    assert chain.list_indexes(UUID) == [1, 3, 4]
    assert_snapshot(chain, 3, {1, 2, 3})

    assert chain.finish_merges(commit) == [(UUID, 2)]

    assert chain.read_manifest(UUID, 3)["parent"] == 1
    assert_snapshot(chain, 3, {1, 2, 3})
    assert_snapshot(chain, 4, {1, 2, 3, 4})
    assert chain.finish_merges(commit) == []


def test_a_failed_merge_is_resumed_not_removed(chain):
    def fail(path):
        raise RuntimeError("commit timed out")

    with pytest.raises(RuntimeError):
        chain.merge_into_child(UUID, 2, 3, fail)
    assert chain.merging(UUID, 2)
    # Removing it would break snapshot 3, which reads through its file.
    with pytest.raises(exception.SnapshotStoreError):
        chain.remove(UUID, 2)
    # Snapshot 3's files still include it, until the merge is done.
    assert chain.chain(UUID, 3) == [3, 2, 1]

    assert chain.resume_merge(UUID, 2, commit) >= 0

    assert not chain.merging(UUID, 2)
    assert chain.read_manifest(UUID, 3)["parent"] == 1
    assert_snapshot(chain, 3, {1, 2, 3})
    assert_snapshot(chain, 4, {1, 2, 3, 4})
