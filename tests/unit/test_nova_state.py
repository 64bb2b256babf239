import types

import pytest

from snapmanager_nova import nova_state


def instance(**fields):
    values = {
        "task_state": None,
        "locked": False,
        "locked_reason": None,
        "nova_status": "ACTIVE",
    }
    values.update(fields)
    return types.SimpleNamespace(**values)


@pytest.mark.parametrize(
    "status", ["ACTIVE", "SHUTOFF", "PAUSED", "SUSPENDED"]
)
def test_still_servers_are_not_busy(status):
    assert nova_state.busy_reason(instance(nova_status=status)) is None


def test_unsynced_instance_is_left_to_the_agent():
    assert nova_state.busy_reason(instance(nova_status=None)) is None


@pytest.mark.parametrize(
    "fields, expected",
    [
        ({"task_state": "migrating"}, "Nova task migrating in progress"),
        ({"nova_status": "SHELVED_OFFLOADED"}, "server is SHELVED_OFFLOADED"),
        ({"nova_status": "BUILD"}, "server is BUILD"),
        (
            {"locked": True, "locked_reason": "maintenance"},
            "server locked in Nova (maintenance)",
        ),
        ({"locked": True}, "server locked in Nova (no reason given)"),
    ],
)
def test_busy_servers_say_why(fields, expected):
    assert nova_state.busy_reason(instance(**fields)) == expected


def test_our_own_lock_is_not_a_reason_to_wait():
    ours = instance(
        locked=True,
        locked_reason=nova_state.LOCK_REASON_PREFIX + "restoring",
    )
    assert nova_state.locked_by_us(ours)
    assert nova_state.busy_reason(ours) is None


def test_a_lock_merely_mentioning_us_is_not_ours():
    theirs = instance(locked=True, locked_reason="not Snapmanager: mine")
    assert not nova_state.locked_by_us(theirs)
    assert nova_state.busy_reason(theirs) is not None


@pytest.mark.parametrize("status", ["ACTIVE", "SHUTOFF"])
def test_a_still_active_or_shut_off_server_can_be_restored(status):
    assert nova_state.restore_refusal(status, "compute-1", None) is None


@pytest.mark.parametrize(
    "status, host, task_state, expected",
    [
        (
            "SHELVED_OFFLOADED",
            None,
            None,
            "it is SHELVED_OFFLOADED and has no compute host",
        ),
        ("ERROR", "compute-1", None, "it is ERROR"),
        # Nova stops only ACTIVE (and ERROR) servers.
        ("PAUSED", "compute-1", None, "it is PAUSED"),
        ("SUSPENDED", "compute-1", None, "it is SUSPENDED"),
        (
            "ACTIVE",
            "compute-1",
            "rebooting",
            "Nova is busy with it (rebooting)",
        ),
        ("ACTIVE", None, None, "it is ACTIVE and has no compute host"),
    ],
)
def test_what_a_restore_cannot_start_from(status, host, task_state, expected):
    assert nova_state.restore_refusal(status, host, task_state) == expected
