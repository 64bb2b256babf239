"""Nova's versioned notifications -> what the conductor does about them.

The payloads are shaped as Nova 34 sends them (InstanceActionPayload in
``nova_object.data``). Nova's real notifications on the real RabbitMQ:
tests/functional/conductor/test_notifications.py.
"""

import datetime
import uuid

import pytest

from snapmanager_nova.conductor import inventory
from snapmanager_nova.conductor import notifications
from snapmanager_nova.db import api as db_api
from tests.unit.db import conftest as db_conftest
from tests.unit.db import fixtures as db_fixtures

engine = db_conftest.engine
ctx = db_conftest.ctx

T0 = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)


def payload(instance_uuid=None, **fields):
    data = {
        "uuid": instance_uuid or str(uuid.uuid4()),
        "tenant_id": "project-a",
        "host": "compute-1",
        "display_name": "vm1",
        "state": "active",
        "task_state": None,
        "power_state": "running",
        "locked": False,
        "locked_reason": None,
        "image_uuid": "image-1",
    }
    data.update(fields)
    return {
        "nova_object.name": "InstanceActionPayload",
        "nova_object.namespace": "nova",
        "nova_object.version": "1.8",
        "nova_object.data": data,
    }


@pytest.mark.parametrize(
    "event_type, why",
    [
        ("instance.delete.start", "delete"),
        ("instance.rebuild.start", "rebuild"),
        ("instance.shelve_offload.start", "shelve-offload"),
    ],
)
def test_nova_about_to_remove_disks_means_release(event_type, why):
    # Sent by the compute service of the instance's own host.
    action = notifications.classify(
        event_type, payload(), "nova-compute:compute-1"
    )
    assert action.release == why
    assert not action.deleted
    assert not action.evacuation


@pytest.mark.parametrize(
    "publisher_id, host",
    [
        # Nova's evacuation: the destination announces a rebuild while
        # the instance's host is still the source.
        ("nova-compute:compute-2", "compute-1"),
        # A sender that cannot be told from an evacuation.
        (None, "compute-1"),
        ("nova-api:controller", "compute-1"),
        ("nova-compute:compute-1", None),
    ],
)
def test_a_rebuild_not_from_the_instances_host_releases_nothing(
    publisher_id, host
):
    action = notifications.classify(
        "instance.rebuild.start", payload(host=host), publisher_id
    )
    assert action.release is None
    assert action.evacuation
    assert action.state.values().get("host") == host


@pytest.mark.parametrize(
    "event_type",
    [
        "instance.delete.end",
        "instance.rebuild.end",
        "instance.shelve.start",
        "instance.lock",
        "instance.power_off.end",
    ],
)
def test_other_events_release_nothing(event_type):
    action = notifications.classify(event_type, payload())
    assert action.release is None
    assert action.deleted is (event_type == "instance.delete.end")


def test_non_instance_events_are_ignored():
    assert notifications.classify("service.update", payload()) is None
    assert notifications.classify("instance.lock", {}) is None


def test_payload_maps_to_the_row():
    action = notifications.classify(
        "instance.lock",
        payload(
            state="stopped",
            locked=True,
            locked_reason="Snapmanager: restore",
            task_state=None,
        ),
    )
    assert action.state.values() == {
        "project_id": "project-a",
        "host": "compute-1",
        "name": "vm1",
        "nova_status": "SHUTOFF",
        "task_state": None,
        "locked": True,
        "locked_reason": "Snapmanager: restore",
        "boot_from_volume": False,
    }


@pytest.mark.parametrize(
    "vm_state, status",
    [
        ("deleted", "DELETED"),
        ("shelved_offloaded", "SHELVED_OFFLOADED"),
        ("error", "ERROR"),
        ("something_new", "SOMETHING_NEW"),
    ],
)
def test_vm_states_become_api_statuses(vm_state, status):
    state = notifications.server_state(payload(state=vm_state))
    assert state.nova_status == status


def test_no_image_means_boot_from_volume():
    assert notifications.server_state(payload(image_uuid="")).boot_from_volume


def test_timestamps_are_utc():
    when = notifications.parse_timestamp("2026-12-01 12:00:00.250000", None)
    assert when == T0 + datetime.timedelta(microseconds=250000)
    assert notifications.parse_timestamp("garbage", T0) == T0
    assert notifications.parse_timestamp(None, T0) == T0


class RecordingCleanup:
    def __init__(self):
        self.calls = []

    def release(self, context, instance, why):
        self.calls.append(("release", instance.uuid, why))

    def deleted(self, context, instance, deleted_at):
        self.calls.append(("deleted", instance.uuid))


def handler():
    cleanup = RecordingCleanup()
    sync = inventory.InventorySync(None, cleanup)
    return notifications.NotificationHandler(cleanup, sync), cleanup


def test_unknown_instances_are_not_recorded(ctx):
    handle, cleanup = handler()
    action = notifications.classify("instance.delete.start", payload())
    assert not handle.handle(ctx, action, T0)
    assert cleanup.calls == []
    assert db_api.instance_list(ctx) == []


def test_delete_releases_then_cleans_up(ctx):
    instance = db_fixtures.make_instance(ctx)
    handle, cleanup = handler()
    start = notifications.classify(
        "instance.delete.start",
        payload(instance.uuid, task_state="deleting"),
    )
    assert handle.handle(ctx, start, T0)
    assert db_api.instance_get(ctx, instance.uuid).task_state == "deleting"
    end = notifications.classify(
        "instance.delete.end", payload(instance.uuid, state="deleted")
    )
    handle.handle(ctx, end, T0 + datetime.timedelta(seconds=1))
    assert cleanup.calls == [
        ("release", instance.uuid, "delete"),
        ("deleted", instance.uuid),
    ]
    assert db_api.instance_get(ctx, instance.uuid).nova_status == "DELETED"


def test_a_late_notification_does_not_undo_a_newer_one(ctx):
    instance = db_fixtures.make_instance(ctx)
    handle, _ = handler()
    lock = notifications.classify(
        "instance.lock", payload(instance.uuid, locked=True)
    )
    handle.handle(ctx, lock, T0 + datetime.timedelta(seconds=5))
    older = notifications.classify(
        "instance.power_on.end", payload(instance.uuid)
    )
    handle.handle(ctx, older, T0)
    assert db_api.instance_get(ctx, instance.uuid).locked


def test_endpoint_survives_a_failing_handler():
    class Failing:
        def handle(self, context, action, observed_at):
            raise RuntimeError("database away")

    endpoint = notifications.NotificationEndpoint(Failing())
    result = endpoint.info(
        {}, "nova-compute:h", "instance.lock", payload(), {"timestamp": ""}
    )
    assert result == "handled"


def test_a_live_migration_follows_the_destination_not_the_source(ctx):
    """The source's ``live_migration_post.end`` comes last and still
    names the source (and the migration's task): the row keeps the
    destination's word, so nothing is sent to the host it left."""
    instance = db_fixtures.make_instance(ctx, host="compute-1")
    handle, _ = handler()
    events = [
        ("instance.live_migration_pre.end", "compute-1", "migrating"),
        ("instance.live_migration_post_dest.end", "compute-2", None),
        ("instance.live_migration_post.end", "compute-1", "migrating"),
    ]
    for seconds, (event_type, host, task_state) in enumerate(events):
        action = notifications.classify(
            event_type,
            payload(instance.uuid, host=host, task_state=task_state),
            publisher_id="nova-compute:" + host,
        )
        if action is not None:
            handle.handle(
                ctx, action, T0 + datetime.timedelta(seconds=seconds)
            )
    row = db_api.instance_get(ctx, instance.uuid)
    assert (row.host, row.task_state) == ("compute-2", None)


@pytest.mark.parametrize(
    "event_type, host",
    [
        # Resize and cold migration: the destination finishes.
        ("instance.resize_finish.end", "compute-2"),
        # Revert: the source takes the server back.
        ("instance.resize_revert.end", "compute-1"),
        # Evacuation and unshelve end on their new host.
        ("instance.rebuild.end", "compute-2"),
        ("instance.unshelve.end", "compute-2"),
    ],
)
def test_the_host_follows_the_end_of_each_move(ctx, event_type, host):
    instance = db_fixtures.make_instance(ctx, host="compute-9")
    handle, _ = handler()
    action = notifications.classify(
        event_type, payload(instance.uuid, host=host)
    )
    handle.handle(ctx, action, T0)
    assert db_api.instance_get(ctx, instance.uuid).host == host
