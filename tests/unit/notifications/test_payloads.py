"""Building the versioned payloads and choosing the event types."""

import datetime
import pathlib
import re
import types

import pytest

from snapmanager_nova.db import models
from snapmanager_nova.notifications import payloads
from tests.unit.notifications.rows import at
from tests.unit.notifications.rows import operation_row
from tests.unit.notifications.rows import schedule_row
from tests.unit.notifications.rows import snapshot_row

UTC = datetime.UTC
DOC = (
    pathlib.Path(__file__).parents[3] / "doc" / "source" / "notifications.rst"
)


# The envelope


def test_the_envelope_is_novas_with_our_namespace():
    built = payloads.DEFAULT_POLICY.build(project_id="p", schedules=[])
    assert built == {
        "nova_object.name": "DefaultSnapshotPolicyPayload",
        "nova_object.namespace": "snapmanager",
        "nova_object.version": "1.0",
        "nova_object.data": {"project_id": "p", "schedules": []},
    }


def test_a_payload_takes_exactly_its_fields():
    with pytest.raises(ValueError, match=r"\['schedules'\] are missing"):
        payloads.DEFAULT_POLICY.build(project_id="p")
    with pytest.raises(ValueError, match=r"\['owner'\] are not declared"):
        payloads.DEFAULT_POLICY.build(project_id="p", schedules=[], owner=1)


def test_fields_are_pinned_to_their_versions():
    # Adding, removing or renaming a field changes what consumers read:
    # move the version with it (Nova's rule: a new field is a minor
    # version), then update this pin and doc/source/notifications.rst.
    assert {p.name: (p.version, len(p.fields)) for p in payloads.PAYLOADS} == {
        "SnapshotActionPayload": ("1.0", 16),
        "SnapshotRestorePayload": ("1.0", 13),
        "SnapshotSchedulePayload": ("1.0", 6),
        "SnapshotPolicyPayload": ("1.0", 5),
        "DefaultSnapshotPolicyPayload": ("1.0", 2),
    }
    for payload in payloads.PAYLOADS:
        assert len(set(payload.fields)) == len(payload.fields)


# Event types


@pytest.mark.parametrize(
    "previous, status, event",
    [
        (None, "creating", "snapmanager.snapshot.create.start"),
        ("creating", "available", "snapmanager.snapshot.create.end"),
        ("creating", "error", "snapmanager.snapshot.create.error"),
        (None, "deleting", "snapmanager.snapshot.delete.start"),
        ("available", "deleting", "snapmanager.snapshot.delete.start"),
        ("error", "deleting", "snapmanager.snapshot.delete.start"),
        ("deleting", "deleted", "snapmanager.snapshot.delete.end"),
        ("deleting", "error", "snapmanager.snapshot.delete.error"),
        ("available", "available", None),
        ("creating", "creating", None),
        (None, "available", None),
    ],
)
def test_snapshot_events_follow_the_status_change(previous, status, event):
    assert payloads.snapshot_event(previous, status) == event


def test_every_allowed_snapshot_change_is_announced():
    for previous, targets in models.SNAPSHOT_TRANSITIONS.items():
        for status in targets:
            assert payloads.snapshot_event(previous, status), (
                previous,
                status,
            )


def test_restore_and_policy_events():
    assert payloads.restore_event("end") == "snapmanager.snapshot.restore.end"
    assert payloads.policy_event("update") == (
        "snapmanager.snapshot_policy.update"
    )
    assert payloads.policy_event("delete", default=True) == (
        "snapmanager.default_snapshot_policy.delete"
    )
    with pytest.raises(ValueError):
        payloads.restore_event("progress")
    with pytest.raises(ValueError):
        payloads.policy_event("create")


def test_error_events_are_told_apart():
    assert payloads.is_error("snapmanager.snapshot.create.error")
    assert not payloads.is_error("snapmanager.snapshot.create.end")


# Times


def test_times_are_utc_whole_seconds_with_z():
    berlin = datetime.timezone(datetime.timedelta(hours=1))
    assert (
        payloads.timestamp(at(2026, 11, 22, 3, 0, 5, 999999, tzinfo=berlin))
        == "2026-11-22T02:00:05Z"
    )
    # Naive values are UTC, as the database's.
    assert (
        payloads.timestamp(datetime.datetime(2026, 1, 2, 3, 4, 5))
        == "2026-01-02T03:04:05Z"
    )
    assert payloads.timestamp(None) is None


def test_durations_keep_milliseconds():
    start = at(2026, 11, 22, 2, 0, 3, 250000)
    assert payloads.seconds_between(start, at(2026, 11, 22, 2, 1, 4)) == (
        60.75
    )
    assert payloads.seconds_between(start, None) is None


# Payloads from rows


def test_a_recorded_snapshot_has_no_outcome_yet():
    data = payloads.snapshot(snapshot_row(), operation_id="op-9")[
        "nova_object.data"
    ]
    assert data == {
        "snapshot_id": "snap-1",
        "operation_id": "op-9",
        "schedule_id": "sched-1",
        "project_id": "proj-1",
        "server_id": "server-1",
        "status": "creating",
        "snapshot_index": 4,
        "backend": "rbd",
        "window_start": "2026-11-22T02:00:00Z",
        "created_at": "2026-11-22T02:00:03Z",
        "finished_at": None,
        "duration_seconds": None,
        "size_bytes": None,
        "freed_bytes": None,
        "quiesced": False,
        "error": None,
    }


def test_a_made_snapshot_has_its_size_and_duration():
    done = at(2026, 11, 22, 2, 0, 5, 500000)
    data = payloads.snapshot(
        snapshot_row(
            status="available",
            completed_at=done,
            updated_at=done,
            size_bytes=123456,
            quiesced=True,
            # The reason of an earlier try is not this event's error.
            error=None,
        )
    )["nova_object.data"]
    assert data["finished_at"] == "2026-11-22T02:00:05Z"
    assert data["duration_seconds"] == 2.25
    assert data["size_bytes"] == 123456
    assert data["quiesced"] is True


def test_only_a_failed_snapshot_carries_its_error():
    done = at(2026, 11, 22, 2, 1, 0)
    failed = snapshot_row(
        status="error", completed_at=done, updated_at=done, error="no disk"
    )
    assert payloads.snapshot(failed)["nova_object.data"]["error"] == "no disk"
    waiting = snapshot_row(error="try 1 failed: agent down; next try at ...")
    assert payloads.snapshot(waiting)["nova_object.data"]["error"] is None


def test_a_failed_deletion_finishes_when_it_failed():
    made = at(2026, 11, 22, 2, 0, 5)
    failed = at(2026, 11, 29, 2, 0, 9)
    data = payloads.snapshot(
        snapshot_row(
            status="error",
            completed_at=made,
            updated_at=failed,
            error="could not ask the agent to delete it",
        )
    )["nova_object.data"]
    assert data["finished_at"] == "2026-11-29T02:00:09Z"
    # Duration stays the time it took to make.
    assert data["duration_seconds"] == 1.75


def test_a_deleted_snapshot_says_what_was_freed():
    deleted = at(2026, 11, 29, 2, 0, 9)
    data = payloads.snapshot(
        snapshot_row(
            status="deleted",
            completed_at=at(2026, 11, 22, 2, 0, 5),
            deleted_at=deleted,
            updated_at=deleted,
        ),
        freed_bytes=4096,
    )["nova_object.data"]
    assert data["finished_at"] == "2026-11-29T02:00:09Z"
    assert data["freed_bytes"] == 4096


def test_restore_payloads():
    started = payloads.restore(operation_row(), snapshot_row())
    assert started["nova_object.name"] == "SnapshotRestorePayload"
    data = started["nova_object.data"]
    assert data["schedule_id"] == "sched-1"
    assert (data["state"], data["step"], data["progress"]) == (
        "running",
        "locking server",
        5,
    )
    assert data["finished_at"] is None
    assert data["duration_seconds"] is None

    failed = payloads.restore(
        operation_row(
            state="failed",
            error="Nova did not finish in time",
            finished_at=at(2026, 11, 22, 9, 5, 30),
        )
    )["nova_object.data"]
    assert failed["error"] == "Nova did not finish in time"
    assert failed["duration_seconds"] == 330.0
    assert failed["schedule_id"] is None  # no snapshot given

    # An error recorded earlier is not a success's.
    done = payloads.restore(operation_row(state="succeeded", error="old"))
    assert done["nova_object.data"]["error"] is None


def test_policy_payloads_nest_their_schedules():
    instance = types.SimpleNamespace(
        snapshot_enabled=True, keep_after_delete=True
    )
    built = payloads.policy("server-1", "proj-1", instance, [schedule_row()])
    data = built["nova_object.data"]
    assert data["snapshot_enabled"] is True
    assert data["keep_after_delete"] is True
    (schedule,) = data["schedules"]
    assert schedule == {
        "nova_object.name": "SnapshotSchedulePayload",
        "nova_object.namespace": "snapmanager",
        "nova_object.version": "1.0",
        "nova_object.data": {
            "schedule_id": "sched-1",
            "spec": "daily@02:00",
            "timezone": "Europe/Berlin",
            "retention": {"keep_count": 7},
            "enabled": True,
            "next_run_at": "2026-11-23T01:00:00Z",
        },
    }
    # Deleted: no policy any more.
    gone = payloads.policy("server-1", "proj-1")["nova_object.data"]
    assert (gone["snapshot_enabled"], gone["schedules"]) == (False, [])

    default = payloads.default_policy("proj-1", [schedule_row()])
    assert default["nova_object.data"]["project_id"] == "proj-1"
    assert len(default["nova_object.data"]["schedules"]) == 1


# The documentation


def test_the_documentation_lists_every_event_and_field():
    text = DOC.read_text()
    events = [
        payloads.snapshot_event(previous, status)
        for previous, targets in models.SNAPSHOT_TRANSITIONS.items()
        for status in targets
    ]
    events += [payloads.restore_event(p) for p in payloads.RESTORE_PHASES]
    events += [
        payloads.policy_event(action, default)
        for action in payloads.POLICY_ACTIONS
        for default in (False, True)
    ]
    missing = [event for event in set(events) if f"``{event}``" not in text]
    assert missing == []
    for payload in payloads.PAYLOADS:
        section = re.search(
            rf"^{payload.name} {re.escape(payload.version)}\n[-~^]+\n"
            rf"(.*?)(?=^\S[^\n]*\n[-~^=]+\n|\Z)",
            text,
            re.MULTILINE | re.DOTALL,
        )
        assert section, f"no section '{payload.name} {payload.version}'"
        documented = re.findall(r"^``(\w+)``", section.group(1), re.MULTILINE)
        assert documented == list(payload.fields), payload.name
