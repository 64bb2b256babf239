"""What Nova's record of a server allows Snapmanager to do with it now.

Pure, and below both the API and the conductor, which apply the same
rules: the conductor to the inventory's row of the instance (kept from
Nova's API and versioned notifications), the API to Nova's answer of the
moment. Neither reads Nova here.
"""

# Every lock Snapmanager takes in Nova carries a reason starting with this,
# so a lock of ours is told apart from an operator's or a tenant's.
LOCK_REASON_PREFIX = "Snapmanager: "

# Nova statuses in which the server's disks are on its host and still.
SNAPSHOTTABLE_STATUSES = frozenset(
    {"ACTIVE", "SHUTOFF", "PAUSED", "SUSPENDED"}
)

# Nova statuses a restore can start from: Nova stops only an ACTIVE (or
# ERROR) server and starts only a SHUTOFF one, and an ERROR server is
# not one to put back to work unexamined.
RESTORABLE_STATUSES = frozenset({"ACTIVE", "SHUTOFF"})


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


def restore_refusal(status, host, task_state):
    """Why a server Nova shows with ``status``, ``host`` and
    ``task_state`` cannot be restored now, or None.

    Checked before anything is recorded or locked: a restore that could
    only fail at its stop or start would leave the server locked for
    nothing.
    """
    if status not in RESTORABLE_STATUSES or not host:
        return f"it is {status}" + ("" if host else " and has no compute host")
    if task_state:
        return f"Nova is busy with it ({task_state})"
    return None
