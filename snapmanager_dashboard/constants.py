"""The API's names the dashboard uses, spelled out.

The policy rules decide which buttons Horizon shows; they must be the
ones snapmanager-api enforces. The statuses and states decide which rows
refresh and which actions apply. They are copies, not imports: a
Horizon host should not import the API's database models or policy
modules to draw a button. tests/unit/dashboard/test_constants.py keeps
every copy equal to snapmanager_nova's.
"""

# The service type in Keystone's catalog, and the scope Horizon's policy
# check files Snapmanager's rules under (POLICY_FILES).
SERVICE_TYPE = "snapmanager"
POLICY_SCOPE = SERVICE_TYPE

# Rules (snapmanager_nova/policies/).
POLICY_SHOW = "snapmanager:snapshot_policy:show"
POLICY_LIST = "snapmanager:snapshot_policy:list"
POLICY_SET = "snapmanager:snapshot_policy:set"
POLICY_UNSET = "snapmanager:snapshot_policy:unset"
SNAPSHOT_LIST = "snapmanager:snapshot:list"
SNAPSHOT_SHOW = "snapmanager:snapshot:show"
SNAPSHOT_CREATE = "snapmanager:snapshot:create"
SNAPSHOT_DELETE = "snapmanager:snapshot:delete"
SNAPSHOT_RESTORE = "snapmanager:snapshot:restore"
OPERATION_SHOW = "snapmanager:operation:show"
OPERATION_RETRY = "snapmanager:operation:retry"
OPERATION_ABANDON = "snapmanager:operation:abandon"

RULES = (
    POLICY_SHOW,
    POLICY_LIST,
    POLICY_SET,
    POLICY_UNSET,
    SNAPSHOT_LIST,
    SNAPSHOT_SHOW,
    SNAPSHOT_CREATE,
    SNAPSHOT_DELETE,
    SNAPSHOT_RESTORE,
    OPERATION_SHOW,
    OPERATION_RETRY,
    OPERATION_ABANDON,
)


def rule(name):
    """A Horizon ``policy_rules`` entry for one of Snapmanager's rules."""
    return (POLICY_SCOPE, name)


# Snapshot statuses (db/models.py SNAPSHOT_STATUSES).
SNAPSHOT_CREATING = "creating"
SNAPSHOT_AVAILABLE = "available"
SNAPSHOT_ERROR = "error"
SNAPSHOT_DELETING = "deleting"
SNAPSHOT_DELETED = "deleted"
SNAPSHOT_STATUSES = (
    SNAPSHOT_CREATING,
    SNAPSHOT_AVAILABLE,
    SNAPSHOT_ERROR,
    SNAPSHOT_DELETING,
    SNAPSHOT_DELETED,
)
# Statuses a snapshot leaves by itself: its row refreshes until then.
SNAPSHOT_CHANGING = (SNAPSHOT_CREATING, SNAPSHOT_DELETING)
# Shown, never stored (db/models.py SNAPSHOT_UNAVAILABLE): the host
# storing the snapshot is out of service for good (API microversion 1.4).
SNAPSHOT_UNAVAILABLE = "unavailable"

# Operation states (db/models.py OPERATION_STATES).
OPERATION_PENDING = "pending"
OPERATION_RUNNING = "running"
OPERATION_SUCCEEDED = "succeeded"
OPERATION_FAILED = "failed"
OPERATION_STATES = (
    OPERATION_PENDING,
    OPERATION_RUNNING,
    OPERATION_SUCCEEDED,
    OPERATION_FAILED,
)
OPERATION_FINISHED = (OPERATION_SUCCEEDED, OPERATION_FAILED)

# Operation types (db/models.py OPERATION_TYPES) the dashboard acts on:
# a failed one of HOLDING_TYPES still holds its server (locked, maybe
# stopped) and is offered a retry (a restore) or to be abandoned.
OPERATION_RESTORE = "restore"
OPERATION_ABANDON_TYPE = "abandon"
OPERATION_HOLDING_TYPES = (OPERATION_RESTORE, OPERATION_ABANDON_TYPE)
