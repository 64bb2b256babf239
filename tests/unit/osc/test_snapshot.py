"""``openstack server snapshot``: requests, --wait and output."""

import json

import pytest
from osc_lib import exceptions

from snapmanager_nova.osc.v1 import common
from snapmanager_nova.osc.v1 import snapshot
from tests.unit.osc import fakes

SNAPSHOT_PATH = f"/v1/snapshots/{fakes.SNAPSHOT_ID}"
OPERATION_PATH = f"/v1/operations/{fakes.OPERATION_ID}"
SERVER_SNAPSHOTS = f"/v1/servers/{fakes.SERVER_ID}/snapshots"


@pytest.fixture(autouse=True)
def no_pause(monkeypatch):
    monkeypatch.setattr(common, "POLL_INTERVAL", 0)


@pytest.fixture
def api():
    return fakes.make_client()


def _page(*items):
    return {"snapshots": list(items), "snapshots_links": []}


def test_list_of_a_server_by_name(api):
    client, transport = api
    transport.answer("GET", SERVER_SNAPSHOTS, 200, _page(fakes.snapshot()))
    app = fakes.make_app(client)

    fakes.run(
        snapshot.ListSnapshot,
        app,
        "web",
        "--status",
        "available",
        "-f",
        "json",
    )

    assert transport.sent[0].query == {"status": ["available"]}
    (row,) = json.loads(app.stdout.getvalue())
    assert row == {
        "ID": fakes.SNAPSHOT_ID,
        "Server ID": fakes.SERVER_ID,
        "Server Name": fakes.SERVER_NAME,
        "Status": "available",
        "Window Start": "2026-03-28T12:00:00Z",
        "Size Bytes": 1073741824,
        "Quiesced": False,
    }


def test_list_long_adds_columns(api):
    client, transport = api
    transport.answer("GET", "/v1/snapshots", 200, _page(fakes.snapshot()))
    app = fakes.make_app(client)

    fakes.run(snapshot.ListSnapshot, app, "--long", "-f", "json")

    (row,) = json.loads(app.stdout.getvalue())
    assert list(row)[-6:] == [
        "Schedule ID",
        "Backend",
        "Host",
        "Completed At",
        "Expires At",
        "Error",
    ]


def test_list_of_a_deleted_server_by_its_uuid(api):
    # Nova no longer knows it; its kept snapshots are still Snapmanager's.
    client, transport = api
    gone = fakes.OTHER_SERVER_ID
    path = f"/v1/servers/{gone}/snapshots"
    transport.answer("GET", path, 200, _page())

    fakes.run(snapshot.ListSnapshot, fakes.make_app(client), gone)

    assert [r.path for r in transport.sent] == [path]


def test_list_of_an_unknown_server_name(api):
    client, transport = api
    with pytest.raises(exceptions.CommandError, match="'db' exists"):
        fakes.run(snapshot.ListSnapshot, fakes.make_app(client), "db")
    assert transport.sent == []


def test_status_must_be_one_the_api_knows(capsys):
    with pytest.raises(SystemExit):
        fakes.run(snapshot.ListSnapshot, fakes.make_app(None), "--status", "x")
    assert "--status" in capsys.readouterr().err


def test_show_as_json(api):
    client, transport = api
    stored = fakes.snapshot()
    transport.answer("GET", SNAPSHOT_PATH, 200, {"snapshot": stored})
    app = fakes.make_app(client)

    fakes.run(snapshot.ShowSnapshot, app, fakes.SNAPSHOT_ID, "-f", "json")

    assert json.loads(app.stdout.getvalue()) == stored


def _accepted(status="creating", op_type="snapshot"):
    return {
        "snapshot": fakes.snapshot(status),
        "operation": fakes.operation(type=op_type),
    }


def test_create_without_wait_shows_the_snapshot_and_its_operation(api):
    client, transport = api
    transport.answer("POST", SERVER_SNAPSHOTS, 202, _accepted())
    app = fakes.make_app(client)

    fakes.run(
        snapshot.CreateSnapshot, app, "web", "--quiesce", "skip", "-f", "json"
    )

    assert transport.sent[0].body == {"quiesce": "skip"}
    shown = json.loads(app.stdout.getvalue())
    assert shown["status"] == "creating"
    assert shown["operation_id"] == fakes.OPERATION_ID
    assert app.stderr.getvalue() == ""


def test_create_wait_follows_the_operation(api):
    client, transport = api
    transport.answer("POST", SERVER_SNAPSHOTS, 202, _accepted())
    transport.answer(
        "GET", OPERATION_PATH, 200, {"operation": fakes.operation()}
    )
    running = fakes.operation("running", 50, "copying")
    transport.answer("GET", OPERATION_PATH, 200, {"operation": running})
    done = fakes.operation("succeeded", 100, "done")
    transport.answer("GET", OPERATION_PATH, 200, {"operation": done})
    transport.answer(
        "GET", SNAPSHOT_PATH, 200, {"snapshot": fakes.snapshot("creating")}
    )
    transport.answer(
        "GET", SNAPSHOT_PATH, 200, {"snapshot": fakes.snapshot("creating")}
    )
    transport.answer("GET", SNAPSHOT_PATH, 200, {"snapshot": fakes.snapshot()})
    app = fakes.make_app(client)

    fakes.run(snapshot.CreateSnapshot, app, "web", "--wait", "-f", "json")

    assert json.loads(app.stdout.getvalue())["status"] == "available"
    what = f"Snapshot {fakes.SNAPSHOT_ID} of server web"
    assert app.stderr.getvalue().splitlines() == [
        f"{what}: pending 0% (creating)",
        f"{what}: running 50% (copying)",
        f"{what}: succeeded 100% (done)",
    ]


def test_create_wait_settles_on_the_snapshot_when_the_operation_lags(api):
    client, transport = api
    transport.answer("POST", SERVER_SNAPSHOTS, 202, _accepted())
    transport.answer(
        "GET", OPERATION_PATH, 200, {"operation": fakes.operation()}
    )
    transport.answer("GET", SNAPSHOT_PATH, 200, {"snapshot": fakes.snapshot()})
    app = fakes.make_app(client)

    fakes.run(snapshot.CreateSnapshot, app, "web", "--wait")

    assert "succeeded 100% (available)" in app.stderr.getvalue()


def test_create_wait_fails_with_the_snapshots_error(api):
    client, transport = api
    transport.answer("POST", SERVER_SNAPSHOTS, 202, _accepted())
    transport.answer(
        "GET", OPERATION_PATH, 200, {"operation": fakes.operation()}
    )
    failed = fakes.snapshot("error", error="guest agent did not answer")
    transport.answer("GET", SNAPSHOT_PATH, 200, {"snapshot": failed})

    with pytest.raises(exceptions.CommandError) as raised:
        fakes.run(
            snapshot.CreateSnapshot, fakes.make_app(client), "web", "--wait"
        )
    assert str(raised.value) == (
        f"Snapshot {fakes.SNAPSHOT_ID} of server web failed: "
        "guest agent did not answer"
    )


def test_restore_wait_shows_the_finished_operation(api):
    client, transport = api
    action = f"{SNAPSHOT_PATH}/action"
    transport.answer("POST", action, 202, {"operation": fakes.operation()})
    steps = [
        fakes.operation("running", 10, "stopping server"),
        fakes.operation("running", 40, "restoring disks"),
        fakes.operation("succeeded", 100, "done"),
    ]
    for step in steps:
        transport.answer("GET", OPERATION_PATH, 200, {"operation": step})
    app = fakes.make_app(client)

    fakes.run(
        snapshot.RestoreSnapshot,
        app,
        fakes.SNAPSHOT_ID,
        "--wait",
        "-f",
        "json",
    )

    assert transport.requests_to("POST", action)[0].body == {"restore": {}}
    assert json.loads(app.stdout.getvalue())["state"] == "succeeded"
    assert "running 40% (restoring disks)" in app.stderr.getvalue()


def test_restore_wait_exits_with_the_operations_error(api):
    client, transport = api
    action = f"{SNAPSHOT_PATH}/action"
    transport.answer("POST", action, 202, {"operation": fakes.operation()})
    failed = fakes.operation(
        "failed", 40, "restoring disks", error="disk gone"
    )
    transport.answer("GET", OPERATION_PATH, 200, {"operation": failed})

    with pytest.raises(exceptions.CommandError) as raised:
        fakes.run(
            snapshot.RestoreSnapshot,
            fakes.make_app(client),
            fakes.SNAPSHOT_ID,
            "--wait",
        )
    assert str(raised.value) == (
        f"Restore from snapshot {fakes.SNAPSHOT_ID} failed: disk gone"
    )


def test_restore_refused_prints_the_apis_message(api):
    client, transport = api
    message = "server 9b0f... has a restore pending"
    transport.answer(
        "POST", f"{SNAPSHOT_PATH}/action", *fakes.error(409, message)
    )

    with pytest.raises(exceptions.CommandError) as raised:
        fakes.run(
            snapshot.RestoreSnapshot, fakes.make_app(client), fakes.SNAPSHOT_ID
        )
    assert str(raised.value) == message


def test_delete_asks_for_every_one_and_counts_failures(api):
    client, transport = api
    missing = "00000000-0000-4000-8000-00000000dead"
    transport.answer(
        "DELETE", SNAPSHOT_PATH, 202, _accepted("deleting", "delete")
    )
    transport.answer(
        "DELETE", f"/v1/snapshots/{missing}", *fakes.error(404, "not found")
    )

    with pytest.raises(exceptions.CommandError) as raised:
        fakes.run(
            snapshot.DeleteSnapshot,
            fakes.make_app(client),
            missing,
            fakes.SNAPSHOT_ID,
        )
    assert str(raised.value) == "1 of 2 snapshots failed to delete."
    assert [r.method for r in transport.sent] == ["DELETE", "DELETE"]


def test_delete_wait_ends_when_the_snapshot_is_deleted(api):
    client, transport = api
    transport.answer(
        "DELETE", SNAPSHOT_PATH, 202, _accepted("deleting", "delete")
    )
    transport.answer(
        "GET", OPERATION_PATH, 200, {"operation": fakes.operation()}
    )
    transport.answer(
        "GET", SNAPSHOT_PATH, 200, {"snapshot": fakes.snapshot("deleting")}
    )
    transport.answer(
        "GET", SNAPSHOT_PATH, 200, {"snapshot": fakes.snapshot("deleted")}
    )
    app = fakes.make_app(client)

    fakes.run(snapshot.DeleteSnapshot, app, fakes.SNAPSHOT_ID, "--wait")

    assert app.stdout.getvalue() == ""
    assert len(transport.requests_to("GET", SNAPSHOT_PATH)) == 2


def test_show_operation(api):
    client, transport = api
    transport.answer(
        "GET", OPERATION_PATH, 200, {"operation": fakes.operation()}
    )
    app = fakes.make_app(client)

    fakes.run(
        snapshot.ShowSnapshotOperation, app, fakes.OPERATION_ID, "-f", "json"
    )

    assert json.loads(app.stdout.getvalue()) == fakes.operation()


def test_progress_rewrites_one_line_on_a_terminal():
    stream = fakes.FakeTTY(tty=True)
    display = common.ProgressDisplay("Restore", stream)
    display.show(common.Progress("running", 10, "stopping server"))
    display.show(common.Progress("running", 10, "stopping server"))
    display.show(common.Progress("succeeded", 100))
    display.close()

    first = "Restore: running 10% (stopping server)"
    last = "Restore: succeeded 100%"
    assert stream.getvalue() == (
        "\r" + first + "\r" + last.ljust(len(first)) + "\n"
    )


def test_show_table_has_a_line_per_disk(api):
    client, transport = api
    disks = [{"target": "vda", "size": 1024}, {"target": "vdb", "size": None}]
    stored = fakes.snapshot(disks=disks)
    transport.answer("GET", SNAPSHOT_PATH, 200, {"snapshot": stored})
    app = fakes.make_app(client)

    fakes.run(snapshot.ShowSnapshot, app, fakes.SNAPSHOT_ID)

    table = app.stdout.getvalue()
    # The field column is as wide as its longest name.
    width = len("unavailable_reason")
    assert f"| {'disks':{width}} | vda 1024 bytes " in table
    assert f"| {'':{width}} | vdb            " in table


def test_list_and_show_ask_for_the_unavailable_status(api):
    client, transport = api
    gone = fakes.snapshot(
        "unavailable", unavailable_reason="The compute host is gone."
    )
    transport.answer("GET", "/v1/snapshots", 200, _page(gone))
    transport.answer("GET", SNAPSHOT_PATH, 200, {"snapshot": gone})
    app = fakes.make_app(client)

    fakes.run(snapshot.ListSnapshot, app, "-f", "json")
    fakes.run(snapshot.ShowSnapshot, app, fakes.SNAPSHOT_ID, "-f", "json")

    assert [
        r.headers.get("OpenStack-API-Version") for r in transport.sent
    ] == [
        "snapmanager 1.4",
        "snapmanager 1.4",
    ]
    listed, shown = app.stdout.getvalue().split("\n]\n", 1)
    assert json.loads(listed + "]")[0]["Status"] == "unavailable"
    assert json.loads(shown)["unavailable_reason"] == (
        "The compute host is gone."
    )
