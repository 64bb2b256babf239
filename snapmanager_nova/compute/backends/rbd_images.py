"""What the RBD backend reads from and does to images and groups.

Each function here runs whole inside one bounded call (the backend wraps
every call with :meth:`RbdClient.call`): it makes a few librbd calls and
handles the library's own "not there" answers before they are translated
into Snapmanager's errors. Ceph's bindings are imported inside the
functions, so that modules importing this one load without them.
"""

import dataclasses
import errno

from snapmanager_nova.compute import calls

KIND_USER = "user"  # one RBD snapshot per image, named after the index
KIND_GROUP = "group"  # one snapshot of the instance's RBD group

# librbd's snapshot namespaces (rbd.RBD_SNAP_NAMESPACE_TYPE_*), as plain
# numbers for the same reason.
NS_USER = 0
NS_GROUP = 1
# rbd.RBD_GROUP_SNAP_STATE_COMPLETE
GROUP_SNAP_COMPLETE = 1


@dataclasses.dataclass(frozen=True)
class Snap:
    """One snapshot on an image, ours or not."""

    id: int
    name: str  # librbd's name on the image: ``.group.*`` for group parts
    namespace: int
    index: int | None = None  # set when it is one of ours
    kind: str | None = None


@dataclasses.dataclass(frozen=True)
class ImageState:
    pool: str
    name: str
    size: int
    object_size: int
    snaps: tuple  # every snapshot, oldest first
    pending: frozenset  # indexes marked as being taken

    @property
    def indexes(self):
        return {snap.index for snap in self.snaps if snap.index is not None}

    def snap(self, index):
        for snap in self.snaps:
            if snap.index == index:
                return snap
        return None


def list_images(ioctx):
    """Every image name in the pool (one read of its directory)."""
    import rbd

    return rbd.RBD().list(ioctx)


def read_image(ioctx, pool, name, names, group_name):
    """The image's :class:`ImageState`, None if it does not exist.

    Opened read-only: no watch, no lock, so reading never disturbs a
    running guest or a concurrent operation.
    """
    import rbd

    try:
        image = rbd.Image(ioctx, name, read_only=True)
    except rbd.ImageNotFound:
        return None
    try:
        snaps = _snaps(image, names, group_name)
        pending = _pending_marks(image, names)
        stat = image.stat()
    finally:
        image.close()
    return ImageState(
        pool=pool,
        name=name,
        size=stat["size"],
        object_size=stat["obj_size"],
        snaps=tuple(sorted(snaps, key=lambda snap: snap.id)),
        pending=frozenset(pending - {None}),
    )


def read_images(ioctx, pool, names, image_names, group_name, intent):
    """(states of ``image_names``, the intent object's keys): what a
    snapshot checks first, in one bounded call. A state is None for an
    image that does not exist."""
    states = [
        read_image(ioctx, pool, name, names, group_name)
        for name in image_names
    ]
    return states, set(intent_read(ioctx, intent))


def snapshot_image(ioctx, name, snap_name):
    """Create ``snap_name`` on the image in one read-write open; its
    provisioned size (:func:`_create_snap`).

    The open and the close happen in the same call, so a handle never
    outlives it, even when the caller gave up waiting (the watch it
    holds would make Nova's removal of the image fail).
    """
    import rbd

    image = rbd.Image(ioctx, name)
    try:
        return _create_snap(image, snap_name)
    finally:
        image.close()


def _create_snap(image, snap_name):
    """Snapshot an open image; the image's provisioned size.

    The size is read before the snapshot, from what the open read: once
    a snapshot is made, librbd re-reads the image's header before it
    answers anything about the image, a round trip that cost some 5 ms
    of a 40 ms snapshot here. Only a resize could come between the two,
    and Nova resizes a disk only in tasks (resize, migration, rebuild)
    during which no snapshot is taken (``nova_state.busy_reason``).
    """
    size = image.size()
    image.create_snap(snap_name)
    return size


def _snaps(image, names, group_name):
    """Every snapshot of an open image, ours identified."""
    snaps = []
    for entry in image.list_snaps():
        namespace = entry.get("namespace", NS_USER)
        index = kind = None
        if namespace == NS_USER:
            index = names.parse_snapshot(entry["name"])
            kind = KIND_USER
        elif namespace == NS_GROUP:
            group = entry.get("group") or {}
            if group.get("name") == group_name:
                index = names.parse_snapshot(group.get("snap_name", ""))
                kind = KIND_GROUP
        snaps.append(
            Snap(
                id=entry["id"],
                name=entry["name"],
                namespace=namespace,
                index=index,
                kind=kind if index is not None else None,
            )
        )
    return snaps


def _pending_marks(image, names):
    """Indexes an older agent marked as being taken in the image's
    metadata."""
    marks = {names.parse_pending_key(key) for key, _ in image.metadata_list()}
    return marks - {None}


# What snapshot_claimed found instead of making the snapshot.
CLAIMED = "claimed"  # an earlier attempt's intent: nothing was written
MISSING = "missing"  # no such image
IN_USE = "in use"  # the index is taken (a plain or a group snapshot)
MARKED = "marked"  # an older agent's mark says the index is being taken


def snapshot_claimed(
    ioctx, name, names, group_name, index, intent, value, close=None
):
    """Snapshot ``index`` of the image under the instance's crash intent,
    in one call: the intent (``value`` under the index's key in the
    object ``intent``) is claimed while the image opens, and the
    snapshot is made only once the claim is on the OSD. ``close``, if
    given, gets the image handle once the snapshot is made, to close it
    off the snapshot's path; otherwise it is closed before returning.

    Returns ``(None, provisioned size)``, or ``(reason,
    None)`` when it was not made: :data:`CLAIMED` (nothing written), or
    :data:`MISSING`, :data:`IN_USE`, :data:`MARKED` (the intent was
    recorded; the caller takes it back). The checks are
    :func:`read_image`'s, in the open that takes the snapshot.
    """
    import rados
    import rbd

    op = ioctx.create_write_op()
    image = None
    try:
        # One write: the object is created if need be, and the key set
        # unless there already (an absent key compares equal to the
        # empty value, which no intent has).
        op.new(rados.LIBRADOS_CREATE_IDEMPOTENT)
        key = names.pending_key(index)
        op.omap_cmp(key, "", rados.LIBRADOS_CMPXATTR_OP_EQ)
        ioctx.set_omap(op, (key,), (value.encode(),))
        claim = ioctx.operate_aio_write_op(op, intent)
        try:
            try:
                image = rbd.Image(ioctx, name)
            except rbd.ImageNotFound:
                pass
        finally:
            # Always waited for: a write landing after this call has
            # returned would outlive what its caller cleans up.
            claim.wait_for_complete()
        if not _claimed(claim, intent):
            return CLAIMED, None
        if image is None:
            return MISSING, None
        if any(
            snap.index == index for snap in _snaps(image, names, group_name)
        ):
            return IN_USE, None
        if index in _pending_marks(image, names):
            return MARKED, None
        # Not to be made once its caller has given up (it would be left
        # behind with the intent already gone).
        calls.check_deadline()
        size = _create_snap(image, names.snapshot(index))
        if close is not None:
            handed, image = image, None  # ``close``'s to close from here
            close(handed)
        return None, size
    finally:
        if image is not None:
            image.close()
        ioctx.release_write_op(op)


def _claimed(completion, object_name):
    """Whether the claim recorded its key (False: the key was there)."""
    import rados

    result = completion.get_return_value()
    if result == -errno.ECANCELED:
        return False  # the comparison failed: an earlier attempt's
    if result < 0:
        raise rados.OSError(
            f"claim of intent object {object_name}", errno=-result
        )
    return True


def measure_snapshot(ioctx, name, snap_name):
    """(provisioned size, used bytes) of a plain snapshot, opened at it."""
    import rbd

    image = rbd.Image(ioctx, name, snapshot=snap_name, read_only=True)
    try:
        return _used(image)
    finally:
        image.close()


def _used(image):
    size = image.size()
    used = [0]

    def count(offset, length, exists):
        if exists:
            used[0] += length

    # Without the parent: the Glance base is shared by every instance
    # booted from it and not part of what the snapshot holds.
    image.diff_iterate(
        0, size, None, count, include_parent=False, whole_object=True
    )
    return size, min(used[0], size)


def measure(ioctx, name, snap_id):
    """(provisioned size, used bytes) of the image at a snapshot."""
    import rbd

    image = rbd.Image(ioctx, name, read_only=True)
    try:
        image.set_snap_by_id(snap_id)
        return _used(image)
    finally:
        image.close()


def exclusive_bytes(ioctx, state, before, snap, after):
    """Objects changed both up to ``snap`` and after it: what only it
    holds, and what the OSDs reclaim once it is removed."""
    import rbd

    def changed(at, since):
        # at=None reads the image as it is now.
        image = rbd.Image(ioctx, state.name, read_only=True)
        objects = set()

        def collect(offset, length, exists):
            first = offset // state.object_size
            last = (offset + length - 1) // state.object_size
            objects.update(range(first, last + 1))

        try:
            if at is not None:
                image.set_snap_by_id(at.id)
            image.diff_iterate(
                0,
                image.size(),
                since.name if since else None,
                collect,
                include_parent=False,
                whole_object=True,
            )
        finally:
            image.close()
        return objects

    # Opening at a snapshot works by id whatever its namespace; the diff
    # starts from a name, which is why ``snap`` and ``before`` must be
    # user-namespace snapshots while ``after`` may be anything (or now).
    shared = changed(snap, before) & changed(after, snap)
    return len(shared) * state.object_size


def copy_snapshot(ioctx, source, snap_id, target):
    """Make image ``target`` hold what ``source`` held at ``snap_id``.

    For a snapshot whose image Nova replaced (rebuild, shelve-offload):
    the data goes into Nova's current image, in place, so that image
    keeps its name, features, parent and watchers, and Nova never sees
    an image it did not make. The target ends at the larger of both sizes
    (as a rollback then Nova's resize would leave it). Idempotent: a copy
    cut short is finished by running it again. Returns the bytes copied.
    """
    import rbd

    src = rbd.Image(ioctx, source, read_only=True)
    try:
        src.set_snap_by_id(snap_id)
        size = src.size()
        chunk = src.stat()["obj_size"]
        extents = []

        def collect(offset, length, exists):
            if exists:
                extents.append((offset, length))

        # With the parent: the Glance base the kept image was cloned
        # from is part of the disk the guest saw, and not the target's.
        src.diff_iterate(
            0, size, None, collect, include_parent=True, whole_object=False
        )
        dst = rbd.Image(ioctx, target)
        try:
            if dst.size() < size:
                dst.resize(size)
            calls.check_deadline()
            # Zeroes first: whatever the snapshot did not hold, and what
            # lies beyond its size, reads as zeroes, as after a rollback.
            dst.write_zeroes(0, dst.size())
            copied = 0
            for offset, length in extents:
                end = offset + length
                while offset < end:
                    calls.check_deadline()
                    step = min(chunk, end - offset)
                    data = src.read(offset, step)
                    dst.write(data, offset)
                    copied += len(data)
                    offset += step
            dst.flush()
            return copied
        finally:
            dst.close()
    finally:
        src.close()


def watchers(image):
    return list(image.watchers_list())


def rename(ioctx, old, new):
    import rbd

    rbd.RBD().rename(ioctx, old, new)


def remove_user_snap(ioctx, image_name, snap_name):
    import rbd

    try:
        image = rbd.Image(ioctx, image_name)
    except rbd.ImageNotFound:
        return
    try:
        if not image.snap_exists(snap_name):
            return
        if image.is_protected_snap(snap_name):
            image.unprotect_snap(snap_name)
            calls.check_deadline()
        image.remove_snap(snap_name)
    finally:
        image.close()


def remove_metadata(ioctx, image_name, key):
    import rbd

    try:
        image = rbd.Image(ioctx, image_name)
    except rbd.ImageNotFound:
        return
    try:
        calls.check_deadline()
        image.metadata_remove(key)
    except KeyError:
        pass  # already gone: removing a mark is idempotent
    finally:
        image.close()


def remove_image(ioctx, state):
    import rbd

    image = rbd.Image(ioctx, state.name)
    try:
        for entry in list(image.list_snaps()):
            if entry.get("namespace", NS_USER) != NS_USER:
                continue  # group and trash snapshots go with their owner
            calls.check_deadline()
            if image.is_protected_snap(entry["name"]):
                image.unprotect_snap(entry["name"])
            image.remove_snap(entry["name"])
    finally:
        image.close()
    calls.check_deadline()
    rbd.RBD().remove(ioctx, state.name)


def open_group(ioctx, group_name):
    import rbd

    return rbd.Group(ioctx, group_name)


def ensure_group(ioctx, group_name):
    import rbd

    if group_name not in rbd.RBD().group_list(ioctx):
        calls.check_deadline()
        try:
            rbd.RBD().group_create(ioctx, group_name)
        except rbd.ObjectExists:
            pass


def group_snaps(ioctx, group_name):
    import rbd

    if group_name not in rbd.RBD().group_list(ioctx):
        return []
    group = rbd.Group(ioctx, group_name)
    return [(snap["name"], snap["state"]) for snap in group.list_snaps()]


def empty_group(ioctx, group_name):
    import rbd

    if group_name not in rbd.RBD().group_list(ioctx):
        return []
    group = rbd.Group(ioctx, group_name)
    removed = []
    for member in list(group.list_images()):
        calls.check_deadline()
        # Nova's images all live in one pool, where the group is made.
        group.remove_image(ioctx, member["name"])
        removed.append(member["name"])
    return removed


def remove_group_snap(ioctx, group_name, snap_name):
    import rbd

    if group_name not in rbd.RBD().group_list(ioctx):
        return
    calls.check_deadline()
    try:
        rbd.Group(ioctx, group_name).remove_snap(snap_name)
    except rbd.ObjectNotFound:
        pass


def remove_group_if_unused(ioctx, group_name):
    import rbd

    if group_name not in rbd.RBD().group_list(ioctx):
        return
    group = rbd.Group(ioctx, group_name)
    # librbd's group_remove removes the group's snapshots too: only an
    # empty group goes.
    if list(group.list_snaps()) or list(group.list_images()):
        return
    calls.check_deadline()
    rbd.RBD().group_remove(ioctx, group_name)


# Crash intent: one RADOS object per instance, beside its images


def intent_set(ioctx, object_name, key, value):
    """Record ``key`` (a snapshot being taken) in the instance's intent
    object, creating it: one write to an object only the agent uses,
    never to an image's header, so the guest's image lock is not
    involved."""
    import rados

    with rados.WriteOpCtx() as op:
        ioctx.set_omap(op, (key,), (value.encode(),))
        ioctx.operate_write_op(op, object_name)


def intent_read(ioctx, object_name):
    """{key: value} of the instance's intent object ({} if none)."""
    import rados

    found = {}
    after = ""
    while True:
        with rados.ReadOpCtx() as op:
            entries, _ = ioctx.get_omap_vals(op, after, "", 512)
            try:
                ioctx.operate_read_op(op, object_name)
            except rados.ObjectNotFound:
                return found
            batch = [(key, value.decode()) for key, value in entries]
        found.update(batch)
        if len(batch) < 512:
            return found
        after = batch[-1][0]


def intent_remove(ioctx, object_name, key):
    """Forget ``key`` (idempotent)."""
    import rados

    try:
        with rados.WriteOpCtx() as op:
            ioctx.remove_omap_keys(op, (key,))
            ioctx.operate_write_op(op, object_name)
    except rados.ObjectNotFound:
        pass


def intent_drop(ioctx, object_name):
    """Remove the intent object if it records nothing any more (when
    the instance's snapshots are released, or after recovery)."""
    import rados

    if intent_read(ioctx, object_name):
        return
    calls.check_deadline()
    try:
        ioctx.remove_object(object_name)
    except rados.ObjectNotFound:
        pass
