"""The snapshot store of file-backed disks: layout and bookkeeping.

Under ``[compute] snapshot_store_path``::

    _base/<name>                   one copy of a Nova backing file, shared
                                   by every stored disk layered over it
    _base/<name>.partial-<random>  a base copy being written
    <uuid>/<index>/manifest.json   what snapshot <index> holds
    <uuid>/<index>/<disk name>     the stored image of each disk
    <uuid>/<index>.partial/        snapshot <index> being written
    <uuid>/<index>/merge.json      snapshot <index> being deleted by
                                   merging it into its child (no
                                   manifest.json any more)
    .lock                          serialises base copies against their
                                   collection

Only a directory named by a bare index, holding a manifest, is a
snapshot: the data is written under ``<index>.partial`` and renamed at
the end, so a copy interrupted half way is never counted, and recovery
deletes what it finds under a partial name.

Nova's image cache deletes a ``_base`` file once no instance on the host
uses it, while a snapshot may outlive the instance and its image. So the
store keeps its own copy of each base, taken once and shared. A base copy
is referenced by the manifests (partial ones included) that name it, and
is dropped when the last of them goes; the lock makes "copy the base if
missing, then reference it" and "drop what nothing references" exclusive.

Chains: a snapshot of the ``incremental`` mode whose manifest names a
``parent`` stores each disk as a qcow2 holding only the clusters written
since the parent, over ``../<parent>/<disk name>`` (a path relative to
its own directory, so a chain stays valid when the instance's directory
is copied elsewhere); the oldest of a chain is a full image.
:meth:`Store.chain_files` lists every file a snapshot needs. Deleting a
snapshot that has a child merges it into the child
(:meth:`Store.merge_into_child`): the child's clusters are committed
into the parent's file, which then reads exactly as the child did and is
renamed over the child's file; a ``merge.json`` records the intent
first, so a crash at any step is finished by :meth:`Store.finish_merges`.

The store belongs to the agent's user: everything here runs without
privileges. Copies out of Nova's tree come in through
:mod:`snapmanager_nova.privsep.fs`, which hands the files over.
"""

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import stat
import uuid as uuid_lib

from oslo_log import log as logging
from oslo_utils import uuidutils

from snapmanager_nova import exception
from snapmanager_nova.compute.backends import crashpoints

LOG = logging.getLogger(__name__)

BASE_DIR = "_base"
MANIFEST = "manifest.json"
MERGE = "merge.json"
PARTIAL = ".partial"
LOCK_FILE = ".lock"
MANIFEST_VERSION = 1
# Directories QEMU's user passes through to a backup target: it may open
# a path it knows, never list one.
SEARCH_ONLY = 0o711

_INDEX = re.compile(r"^(?:0|[1-9][0-9]*)$")
_PARTIAL_INDEX = re.compile(r"^((?:0|[1-9][0-9]*))\.partial$")
# A Nova file name (disk, disk.local, a _base hash): no path tricks.
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")


def check_name(name):
    """Refuse a disk or base name that could step out of its directory."""
    if not _NAME.match(name or "") or name in (MANIFEST, BASE_DIR):
        raise exception.Invalid(reason=f"unusable file name {name!r}")
    return name


def allocated_bytes(path):
    """Bytes a file or a tree takes on disk (holes not counted)."""
    if os.path.isdir(path):
        total = 0
        for parent, _dirs, files in os.walk(path):
            for name in files:
                total += allocated_bytes(os.path.join(parent, name))
        return total
    try:
        return os.lstat(path).st_blocks * 512
    except FileNotFoundError:
        return 0


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path, data):
    temporary = path + ".tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w", encoding="utf-8") as stream:
        json.dump(data, stream, indent=1, sort_keys=True)
        stream.flush()
        os.fsync(stream.fileno())
    os.rename(temporary, path)
    _fsync_dir(os.path.dirname(path))


class Store:
    """One snapshot store directory."""

    def __init__(self, root):
        self.root = os.path.abspath(root)

    # Names

    @staticmethod
    def _check_uuid(instance_uuid):
        if not uuidutils.is_uuid_like(instance_uuid):
            raise exception.Invalid(
                reason=f"{instance_uuid!r} is not an instance UUID"
            )
        return instance_uuid

    @staticmethod
    def _check_index(index):
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise exception.Invalid(
                reason=f"{index!r} is not a snapshot index"
            )
        return index

    def instance_dir(self, instance_uuid):
        return os.path.join(self.root, self._check_uuid(instance_uuid))

    def snapshot_dir(self, instance_uuid, index):
        return os.path.join(
            self.instance_dir(instance_uuid), str(self._check_index(index))
        )

    def partial_dir(self, instance_uuid, index):
        return self.snapshot_dir(instance_uuid, index) + PARTIAL

    def base_path(self, name):
        return os.path.join(self.root, BASE_DIR, check_name(name))

    # Reading

    def list_indexes(self, instance_uuid):
        """Indexes of the complete snapshots of an instance, ascending."""
        try:
            names = os.listdir(self.instance_dir(instance_uuid))
        except FileNotFoundError:
            return []
        directory = self.instance_dir(instance_uuid)
        return sorted(
            int(name)
            for name in names
            if _INDEX.match(name)
            and os.path.isfile(os.path.join(directory, name, MANIFEST))
        )

    def read_manifest(self, instance_uuid, index):
        """The manifest of a complete snapshot; StoredSnapshotNotFound."""
        path = os.path.join(self.snapshot_dir(instance_uuid, index), MANIFEST)
        try:
            with open(path, encoding="utf-8") as stream:
                return json.load(stream)
        except FileNotFoundError:
            raise exception.StoredSnapshotNotFound(
                instance_uuid=instance_uuid, index=index
            ) from None

    def latest(self, instance_uuid):
        """The newest complete snapshot's (index, manifest), or None."""
        indexes = self.list_indexes(instance_uuid)
        if not indexes:
            return None
        return indexes[-1], self.read_manifest(instance_uuid, indexes[-1])

    def chain(self, instance_uuid, index):
        """Indexes whose files snapshot ``index`` reads, itself first.

        Only a complete snapshot (or one whose merge into this one is
        under way, which recovery finishes first) is followed.
        """
        found = [index]
        manifest = self.read_manifest(instance_uuid, index)
        while manifest.get("parent") is not None:
            parent = manifest["parent"]
            if parent in found or len(found) > 100000:
                raise exception.SnapshotStoreError(
                    path=self.snapshot_dir(instance_uuid, index),
                    reason="the chain of parents loops",
                )
            found.append(parent)
            manifest = self._chain_manifest(instance_uuid, parent)
        return found

    def _chain_manifest(self, instance_uuid, index):
        """The manifest of a snapshot, or of one being merged (whose file
        its child still reads through until the merge is finished)."""
        if self.merging(instance_uuid, index):
            path = os.path.join(self.snapshot_dir(instance_uuid, index), MERGE)
            with open(path, encoding="utf-8") as stream:
                return json.load(stream)["manifest"]
        return self.read_manifest(instance_uuid, index)

    def chain_files(self, instance_uuid, index):
        """Every file snapshot ``index`` needs to be restored, as paths.

        Its manifest and disk files, those of each snapshot its disks are
        layered over (its chain: their files are the backing files of
        its own, named relatively inside the instance's directory), and
        the base copies the manifests name (``_base/<name>``, used when
        Nova's own base is gone at the restore). Copying these to the
        same relative paths under another store makes the snapshot
        restorable there, and listable once the manifest is in place:
        copy the manifest last. A member whose merge into its child was
        cut short has its ``merge.json`` listed instead of a manifest:
        the receiving agent's recovery finishes that merge.
        """
        files = []
        bases = set()
        for member in reversed(self.chain(instance_uuid, index)):
            manifest = self._chain_manifest(instance_uuid, member)
            directory = self.snapshot_dir(instance_uuid, member)
            for disk in manifest["disks"]:
                files.append(os.path.join(directory, check_name(disk["name"])))
            merging = self.merging(instance_uuid, member)
            files.append(
                os.path.join(directory, MERGE if merging else MANIFEST)
            )
            bases.update(manifest.get("bases", ()))
        return [self.base_path(name) for name in sorted(bases)] + files

    def child_of(self, instance_uuid, index):
        """The complete snapshot layered directly over ``index``, if any."""
        for other in self.list_indexes(instance_uuid):
            if other > index and (
                self.read_manifest(instance_uuid, other).get("parent") == index
            ):
                return other
        return None

    @staticmethod
    def read_partial_manifest(path):
        """What a partial snapshot noted when it began ({} if nothing)."""
        try:
            with open(os.path.join(path, MANIFEST), encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def partials(self):
        """(uuid, index, path) of every snapshot left half written."""
        found = []
        for entry in self._instance_entries():
            directory = os.path.join(self.root, entry)
            for name in sorted(os.listdir(directory)):
                match = _PARTIAL_INDEX.match(name)
                if match:
                    found.append(
                        (
                            entry,
                            int(match.group(1)),
                            os.path.join(directory, name),
                        )
                    )
        return found

    def _instance_entries(self):
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return sorted(
            name
            for name in names
            if uuidutils.is_uuid_like(name)
            and os.path.isdir(os.path.join(self.root, name))
        )

    # Writing a snapshot

    @contextlib.contextmanager
    def lock(self):
        """Exclusive across the agent's threads and processes."""
        self._ensure_root()
        fd = os.open(
            os.path.join(self.root, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o600
        )
        try:
            # A separate open file per holder: flock then excludes other
            # threads of this process as well as other processes.
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _ensure_root(self):
        # Tenants' data: every file is the agent's, mode 0600. The root
        # and instance directories may be passed through (not listed) by
        # others, because QEMU, as its own user on a production host,
        # writes backup targets into a partial directory (see begin).
        if not os.path.isdir(self.root):
            os.makedirs(self.root, mode=SEARCH_ONLY, exist_ok=True)
        if stat.S_IMODE(os.stat(self.root).st_mode) != SEARCH_ONLY:
            os.chmod(self.root, SEARCH_ONLY)
        os.makedirs(os.path.join(self.root, BASE_DIR), 0o700, exist_ok=True)

    def begin(
        self,
        instance_uuid,
        index,
        bases,
        copy_base,
        mode=None,
        qemu_writes=False,
    ):
        """Create snapshot ``index``'s partial directory; return its path.

        ``bases`` are the names of the base copies the snapshot will be
        layered over; ``copy_base(name, destination)`` writes one that is
        missing; ``mode``, how the snapshot is taken, is noted for
        recovery. Each base is copied outside the lock (it may be large),
        then published and referenced from the partial manifest under it,
        so a concurrent collection never drops a base about to be used.
        With ``qemu_writes`` (a backup job's targets) QEMU's user may pass
        through the partial directory to the files libvirtd creates in it
        for QEMU; :meth:`finish` closes it again.
        """
        partial = self.partial_dir(instance_uuid, index)
        if os.path.exists(self.snapshot_dir(instance_uuid, index)):
            raise exception.SnapshotIndexInUse(
                instance_uuid=instance_uuid, index=index
            )
        for _attempt in range(3):
            for name in bases:
                self._copy_base_if_missing(name, copy_base)
            with self.lock():
                if not all(
                    os.path.exists(self.base_path(name)) for name in bases
                ):
                    # Collected between our check and now, by the delete
                    # of the last snapshot using it: copy it again.
                    continue
                directory = self.instance_dir(instance_uuid)
                os.makedirs(directory, SEARCH_ONLY, exist_ok=True)
                if stat.S_IMODE(os.stat(directory).st_mode) != SEARCH_ONLY:
                    os.chmod(directory, SEARCH_ONLY)
                if os.path.exists(partial):
                    shutil.rmtree(partial)
                os.mkdir(partial, 0o700)
                if qemu_writes:
                    os.chmod(partial, SEARCH_ONLY)
                _write_json(
                    os.path.join(partial, MANIFEST),
                    {
                        "version": MANIFEST_VERSION,
                        "bases": sorted(bases),
                        "mode": mode,
                    },
                )
                return partial
        raise exception.SnapshotStoreError(
            path=self.root,
            reason="base copies kept disappearing while they were taken",
        )

    def _copy_base_if_missing(self, name, copy_base):
        final = self.base_path(name)
        if os.path.exists(final):
            return
        self._ensure_root()
        temporary = f"{final}{PARTIAL}-{uuid_lib.uuid4().hex[:8]}"
        try:
            copy_base(name, temporary)
            with self.lock():
                if os.path.exists(final):
                    return  # another snapshot published it meanwhile
                os.rename(temporary, final)
                _fsync_dir(os.path.dirname(final))
                LOG.info("Stored a copy of base image %s", name)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)

    def finish(self, partial, manifest):
        """Write the manifest and publish the partial snapshot atomically."""
        for name in os.listdir(partial):
            _fsync_file(os.path.join(partial, name))
        data = dict(manifest, version=MANIFEST_VERSION)
        _write_json(os.path.join(partial, MANIFEST), data)
        os.chmod(partial, 0o700)
        final = partial[: -len(PARTIAL)]
        os.rename(partial, final)
        _fsync_dir(os.path.dirname(final))
        return final

    def discard(self, path):
        """Remove a partial snapshot directory; return bytes freed."""
        if not os.path.basename(path).endswith(PARTIAL):
            raise exception.Invalid(reason=f"{path} is not a partial snapshot")
        freed = allocated_bytes(path)
        shutil.rmtree(path, ignore_errors=True)
        self._remove_instance_dir_if_empty(os.path.dirname(path))
        return freed

    # Deleting

    def remove(self, instance_uuid, index):
        """Delete snapshot ``index`` and unused bases; return bytes freed.

        The snapshot directory is first renamed back to a partial name,
        so a crash half way leaves something recovery removes rather than
        a snapshot with missing files that still counts.
        """
        final = self.snapshot_dir(instance_uuid, index)
        doomed = self.partial_dir(instance_uuid, index)
        if self.merging(instance_uuid, index):
            # Its file is still its child's backing file.
            raise exception.SnapshotStoreError(
                path=final, reason="it is being merged into its child"
            )
        freed = 0
        with contextlib.suppress(FileNotFoundError):
            os.rename(final, doomed)
        if os.path.exists(doomed):
            freed += allocated_bytes(doomed)
            shutil.rmtree(doomed)
            _fsync_dir(self.instance_dir(instance_uuid))
        self._remove_instance_dir_if_empty(self.instance_dir(instance_uuid))
        return freed + self.collect_bases()

    def merge_into_child(self, instance_uuid, index, child, commit):
        """Delete snapshot ``index`` by merging it into ``child``.

        ``commit(path)`` commits the qcow2 ``path`` into its backing file
        (``qemu-img commit -d``). Returns the bytes freed.
        """
        directory = self.snapshot_dir(instance_uuid, index)
        manifest = self.read_manifest(instance_uuid, index)
        before = allocated_bytes(directory) + allocated_bytes(
            self.snapshot_dir(instance_uuid, child)
        )
        # The intent first; without a manifest the snapshot is no longer
        # listed, restorable or deletable on its own.
        _write_json(
            os.path.join(directory, MERGE),
            {"into": child, "manifest": manifest},
        )
        os.unlink(os.path.join(directory, MANIFEST))
        _fsync_dir(directory)
        self._finish_merge(instance_uuid, index, commit)
        after = allocated_bytes(self.snapshot_dir(instance_uuid, child))
        return max(before - after, 0) + self.collect_bases()

    def merging(self, instance_uuid, index):
        """Whether snapshot ``index``'s merge into its child is unfinished
        (a failure or a crash cut it short)."""
        return os.path.isfile(
            os.path.join(self.snapshot_dir(instance_uuid, index), MERGE)
        )

    def resume_merge(self, instance_uuid, index, commit):
        """Finish an interrupted :meth:`merge_into_child`; bytes freed."""
        before = allocated_bytes(self.instance_dir(instance_uuid))
        self._finish_merge(instance_uuid, index, commit)
        after = allocated_bytes(self.instance_dir(instance_uuid))
        return max(before - after, 0) + self.collect_bases()

    def _finish_merge(self, instance_uuid, index, commit):
        """Every step of a merge, each one safe to repeat after a crash."""
        directory = self.snapshot_dir(instance_uuid, index)
        with open(os.path.join(directory, MERGE), encoding="utf-8") as f:
            intent = json.load(f)
        child = intent["into"]
        parent = intent["manifest"].get("parent")
        child_dir = self.snapshot_dir(instance_uuid, child)
        for disk in intent["manifest"]["disks"]:
            name = check_name(disk["name"])
            own = os.path.join(directory, name)
            if not os.path.exists(own):
                continue  # renamed over the child's file already
            # The child's clusters go into our file, which then reads as
            # the child does; the child's file reads the same all along
            # (its clusters stay, -d), so a crash here changes nothing a
            # restore of the child sees, and the commit is repeated.
            commit(os.path.join(child_dir, name))
            _fsync_file(own)
            crashpoints.reached("merge-committed")
            os.rename(own, os.path.join(child_dir, name))
            _fsync_dir(child_dir)
            crashpoints.reached("merge-renamed")
        manifest = self.read_manifest(instance_uuid, child)
        if manifest.get("parent") == index:
            for disk in manifest["disks"]:
                disk["allocated_bytes"] = allocated_bytes(
                    os.path.join(child_dir, check_name(disk["name"]))
                )
                disk["parent"] = parent
            manifest["parent"] = parent
            manifest["size_bytes"] = sum(
                d["allocated_bytes"] for d in manifest["disks"]
            )
            _write_json(os.path.join(child_dir, MANIFEST), manifest)
        shutil.rmtree(directory)
        _fsync_dir(self.instance_dir(instance_uuid))

    def finish_merges(self, commit):
        """Finish every merge a crash interrupted; [(uuid, index)]."""
        done = []
        for entry in self._instance_entries():
            directory = os.path.join(self.root, entry)
            for name in sorted(os.listdir(directory)):
                if _INDEX.match(name) and os.path.isfile(
                    os.path.join(directory, name, MERGE)
                ):
                    self._finish_merge(entry, int(name), commit)
                    done.append((entry, int(name)))
        if done:
            self.collect_bases()
        return done

    def _remove_instance_dir_if_empty(self, directory):
        try:
            os.rmdir(directory)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTEMPTY, errno.EEXIST):
                raise

    def referenced_bases(self):
        """Names of the base copies any manifest, partial or not, uses."""
        names = set()
        for entry in self._instance_entries():
            directory = os.path.join(self.root, entry)
            for name in os.listdir(directory):
                path = os.path.join(directory, name, MANIFEST)
                try:
                    with open(path, encoding="utf-8") as stream:
                        names.update(json.load(stream).get("bases", ()))
                except (FileNotFoundError, NotADirectoryError):
                    continue
                except ValueError:
                    # A manifest cut short by a crash: the directory is a
                    # partial one recovery removes; keep every base until
                    # then rather than guess.
                    LOG.warning("Unreadable manifest %s", path)
                    return None
        return names

    def collect_bases(self):
        """Drop base copies nothing references; return bytes freed."""
        directory = os.path.join(self.root, BASE_DIR)
        freed = 0
        with self.lock():
            referenced = self.referenced_bases()
            if referenced is None:
                return 0
            try:
                names = os.listdir(directory)
            except FileNotFoundError:
                return 0
            for name in names:
                if name in referenced:
                    continue
                path = os.path.join(directory, name)
                if PARTIAL in name:
                    # A copy in progress (under no lock), or one a crash
                    # interrupted: only recovery, with nothing running,
                    # removes those.
                    continue
                freed += allocated_bytes(path)
                os.unlink(path)
                LOG.info("Dropped the stored copy of base image %s", name)
        return freed

    def remove_partial_bases(self):
        """Delete base copies a crash interrupted; return their names."""
        directory = os.path.join(self.root, BASE_DIR)
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return []
        removed = []
        for name in names:
            if PARTIAL in name:
                os.unlink(os.path.join(directory, name))
                removed.append(name)
        return removed
