"""Whether Nova's server is in a state Snapmanager may work on now.

Pure: it reads the conductor's inventory row of the instance (kept from
Nova's API and versioned notifications), never Nova itself.
"""

# Every lock Snapmanager takes in Nova carries a reason starting with this,
# so a lock of ours is told apart from an operator's or a tenant's.
LOCK_REASON_PREFIX = "Snapmanager: "

# Nova statuses in which the server's disks are on its host and still.
SNAPSHOTTABLE_STATUSES = frozenset(
    {"ACTIVE", "SHUTOFF", "PAUSED", "SUSPENDED"}
)


def locked_by_us(instance):
    return bool(instance.locked) and (instance.locked_reason or "").startswith(
        LOCK_REASON_PREFIX
    )


def busy_reason(instance):
    """Why a scheduled snapshot of ``instance`` must wait, or None.

    A task in progress (Nova is migrating, resizing, rebooting... it) or a
    lock someone else holds both mean hands off; so does a status whose
    disks are not in place (building, shelved, error). An instance the
    inventory has not seen yet (no status) is not refused here: the agent
    checks the domain itself.
    """
    if instance.task_state:
        return f"Nova task {instance.task_state} in progress"
    if instance.locked and not locked_by_us(instance):
        reason = instance.locked_reason or "no reason given"
        return f"server locked in Nova ({reason})"
    status = instance.nova_status
    if status is not None and status not in SNAPSHOTTABLE_STATUSES:
        return f"server is {status}"
    return None
