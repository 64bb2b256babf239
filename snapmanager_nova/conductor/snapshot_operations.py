"""The API's operations that follow one snapshot to its end.

``openstack server snapshot create --wait`` and ``snapshot delete
--wait`` poll the operation the API recorded beside the snapshot (a row
of ``operations`` with its ``snapshot_id``). Whoever moves the snapshot
to its final state -- the agent's report, a retry given up, a
reconciliation -- finishes that operation with it, through here, and
that is also where the change is announced (``snapmanager.snapshot.
create.end|error``, ``delete.end|error``, :mod:`snapmanager_nova.
notifications`). Restores also name a snapshot but are the restore
orchestrator's.
"""

import collections

from oslo_log import log as logging

from snapmanager_nova import exception
from snapmanager_nova.db import api as db_api
from snapmanager_nova.db import models
from snapmanager_nova.notifications import notifier

LOG = logging.getLogger(__name__)

FOLLOWING_TYPES = ("snapshot", "delete")
# Longest error text kept in a row; agents' messages carry library output.
MAX_ERROR = 2000


def finish(context, snapshot, previous, error=None, freed_bytes=None):
    """``snapshot`` (the row as changed) reached a final state from
    ``previous``: succeed (``error`` None) or fail its open operations,
    and announce the change. ``freed_bytes``: what a deletion freed, as
    the agent reports it. Returns the ids of the operations finished.
    """
    return finish_all(context, [snapshot], previous, error, freed_bytes)[
        snapshot.id
    ]


def finish_all(context, snapshots, previous, error=None, freed_bytes=None):
    """:func:`finish` for several snapshots that made the same move, their
    operations read in one query. Returns {snapshot id: the ids of its
    operations finished}."""
    if error is None:
        values = {"state": models.OPERATION_SUCCEEDED, "step": "done"}
    else:
        values = {
            "state": models.OPERATION_FAILED,
            "error": str(error)[:MAX_ERROR],
        }
    following = collections.defaultdict(list)
    if snapshots:
        for operation in db_api.operation_list_unfinished_for_snapshot(
            context, [snapshot.id for snapshot in snapshots], FOLLOWING_TYPES
        ):
            following[operation.snapshot_id].append(operation)
    finished = {}
    for snapshot in snapshots:
        done = finished[snapshot.id] = [
            operation.id
            for operation in following[snapshot.id]
            if _finish_operation(context, operation.id, values)
        ]
        notifier.snapshot_changed(
            context,
            snapshot,
            previous,
            operation_id=done[0] if done else None,
            freed_bytes=freed_bytes,
        )
    return finished


def _finish_operation(context, operation_id, values):
    """Whether the operation was finished here, with ``values``."""
    try:
        db_api.operation_update(context, operation_id, values)
    except (exception.InvalidStatusTransition, exception.NotFound) as exc:
        # Finished meanwhile by another conductor: nothing to do.
        LOG.debug("Operation %s moved on: %s", operation_id, exc)
        return False
    return True
