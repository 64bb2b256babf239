"""The names Snapmanager gives to what it creates in Ceph.

Everything the RBD backend makes is found again by name alone, without
the database: recovery after a crash, reconciliation, and deleting
snapshots of instances Nova no longer knows all start from a pool listing.
So every name is formatted and parsed here, in one place, and parsing is
strict: a name this module did not produce is never taken for ours.

With the default prefix ``snapmanager-``:

``snapmanager-42``
    snapshot index 42: a snapshot on each of the instance's images, or a
    snapshot of the instance's RBD group (the group's snapshots carry the
    same name; librbd names their per-image parts ``.group.*``).
``snapmanager-<uuid>``
    the instance's RBD group.
``snapmanager-intent-<uuid>``
    a RADOS object (not an image) in the pool whose omap records the
    instance's snapshots being taken, one key ``snapmanager-pending-42``
    each (crash intent).
``snapmanager-pending-42``
    that key; agents before the intent object set it as image metadata
    instead, which is still read and cleared.
``snapmanager-kept-<uuid>-42_disk``
    an image taken out of Nova's namespace so that its snapshots outlive
    the instance (``keep_after_delete``); 42 is the newest snapshot index
    on it, which makes the name unique across rebuilds. Nova finds an
    instance's images by the ``<uuid>_`` prefix, so it never sees these.
"""

import re

from snapmanager_nova import exception

_INDEX = r"(0|[1-9][0-9]*)"
_UUID = r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
# Characters Ceph refuses in image names ('/') and snapshot names ('@'),
# which a prefix must not bring in.
_FORBIDDEN = ("/", "@")


class SnapshotNames:
    """Format and parse the names made with one ``snapshot_prefix``."""

    def __init__(self, prefix):
        if not prefix or any(char in prefix for char in _FORBIDDEN):
            raise exception.Invalid(
                reason=f"[rbd] snapshot_prefix {prefix!r} must be "
                "non-empty and contain neither '/' nor '@'"
            )
        self.prefix = prefix
        quoted = re.escape(prefix)
        self._snapshot = re.compile(rf"{quoted}{_INDEX}\Z")
        self._pending = re.compile(rf"{quoted}pending-{_INDEX}\Z")
        self._kept = re.compile(rf"{quoted}kept-{_UUID}-{_INDEX}_(.+)\Z")

    # Snapshots

    def snapshot(self, index):
        return f"{self.prefix}{_checked_index(index)}"

    def parse_snapshot(self, name):
        """The index of one of our snapshot names, else None."""
        match = self._snapshot.match(name)
        return int(match.group(1)) if match else None

    # Groups

    def group(self, instance_uuid):
        return f"{self.prefix}{instance_uuid}"

    # Marks of snapshots being taken

    def intent_object(self, instance_uuid):
        return f"{self.prefix}intent-{instance_uuid}"

    def pending_key(self, index):
        return f"{self.prefix}pending-{_checked_index(index)}"

    def parse_pending_key(self, key):
        match = self._pending.match(key)
        return int(match.group(1)) if match else None

    # Images

    @staticmethod
    def nova_prefix(instance_uuid):
        """What Nova's own images of the instance start with."""
        return f"{instance_uuid}_"

    def is_nova_image(self, instance_uuid, name):
        prefix = self.nova_prefix(instance_uuid)
        return name.startswith(prefix) and len(name) > len(prefix)

    def kept_image(self, instance_uuid, generation, disk_name):
        """The name of a kept image; ``disk_name`` is Nova's suffix
        (``disk``, ``disk.local``)."""
        if not disk_name:
            raise exception.Invalid(reason="a kept image needs a disk name")
        return (
            f"{self.prefix}kept-{instance_uuid}-"
            f"{_checked_index(generation)}_{disk_name}"
        )

    def parse_kept_image(self, name):
        """(instance_uuid, generation, disk_name) or None."""
        match = self._kept.match(name)
        if not match:
            return None
        return match.group(1), int(match.group(2)), match.group(3)

    def is_kept_image(self, instance_uuid, name):
        parsed = self.parse_kept_image(name)
        return parsed is not None and parsed[0] == instance_uuid

    def instance_images(self, instance_uuid, names):
        """(Nova's images, kept images) of the instance among ``names``."""
        nova, kept = [], []
        for name in names:
            if self.is_nova_image(instance_uuid, name):
                nova.append(name)
            elif self.is_kept_image(instance_uuid, name):
                kept.append(name)
        return sorted(nova), sorted(kept)


def _checked_index(index):
    # bool is an int: refuse it along with negatives and strings, so a
    # caller's mistake never becomes a name that parses back differently.
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise exception.Invalid(
            reason=f"snapshot index {index!r} is not a non-negative integer"
        )
    return index
