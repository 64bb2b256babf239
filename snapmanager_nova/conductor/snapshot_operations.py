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
    if error is None:
        values = {"state": models.OPERATION_SUCCEEDED, "step": "done"}
    else:
        values = {
            "state": models.OPERATION_FAILED,
            "error": str(error)[:MAX_ERROR],
        }
    finished = []
    for operation in db_api.operation_list_unfinished_for_snapshot(
        context, snapshot.id, FOLLOWING_TYPES
    ):
        try:
            db_api.operation_update(context, operation.id, values)
        except (exception.InvalidStatusTransition, exception.NotFound) as exc:
            # Finished meanwhile by another conductor: nothing to do.
            LOG.debug("Operation %s moved on: %s", operation.id, exc)
            continue
        finished.append(operation.id)
    notifier.snapshot_changed(
        context,
        snapshot,
        previous,
        operation_id=finished[0] if finished else None,
        freed_bytes=freed_bytes,
    )
    return finished
