"""``openstack server snapshot operation retry|abandon``, and the
deadline of every ``--wait``."""

import itertools
import json

import pytest

from snapmanager_nova.osc.v1 import common
from snapmanager_nova.osc.v1 import snapshot
from tests.unit.osc import fakes

OPERATION_PATH = f"/v1/operations/{fakes.OPERATION_ID}"
ACTION_PATH = f"{OPERATION_PATH}/action"
NEW_ID = "c0de0000-0000-4000-8000-000000000002"
NEW_PATH = f"/v1/operations/{NEW_ID}"


@pytest.fixture(autouse=True)
def no_pause(monkeypatch):
    monkeypatch.setattr(common, "POLL_INTERVAL", 0)


@pytest.fixture
def api():
    return fakes.make_client()


def test_retry_asks_for_it_at_microversion_1_3_and_waits(api):
    client, transport = api
    transport.answer(
        "POST", ACTION_PATH, 202, {"operation": fakes.operation(id=NEW_ID)}
    )
    for state, step in (("running", "locking server"), ("succeeded", "done")):
        transport.answer(
            "GET",
            NEW_PATH,
            200,
            {"operation": fakes.operation(state, 50, step, id=NEW_ID)},
        )
    app = fakes.make_app(client)

    fakes.run(
        snapshot.RetrySnapshotOperation,
        app,
        fakes.OPERATION_ID,
        "--wait",
        "-f",
        "json",
    )

    (sent,) = transport.requests_to("POST", ACTION_PATH)
    assert sent.body == {"retry": {}}
    assert sent.headers["OpenStack-API-Version"] == "snapmanager 1.3"
    shown = json.loads(app.stdout.getvalue())
    assert (shown["id"], shown["state"]) == (NEW_ID, "succeeded")


def test_abandon_says_how_the_server_is_left(api):
    client, transport = api
    abandon = fakes.operation(id=NEW_ID, type="abandon")
    transport.answer("POST", ACTION_PATH, 202, {"operation": abandon})
    app = fakes.make_app(client)

    fakes.run(snapshot.AbandonSnapshotOperation, app, fakes.OPERATION_ID)

    assert transport.requests_to("POST", ACTION_PATH)[0].body == {
        "abandon": {}
    }
    assert app.stderr.getvalue() == (
        f"Server {fakes.SERVER_ID} is left as the restore left it, stopped "
        "if it got that far: 'openstack server start "
        f"{fakes.SERVER_ID}' starts it.\n"
    )


def test_a_refused_retry_prints_the_apis_message(api):
    client, transport = api
    message = (
        f"Operation {fakes.OPERATION_ID} cannot be retried: it was retried "
        "or abandoned already."
    )
    transport.answer("POST", ACTION_PATH, *fakes.error(409, message))
    with pytest.raises(snapshot.exceptions.CommandError) as raised:
        fakes.run(
            snapshot.RetrySnapshotOperation,
            fakes.make_app(client),
            fakes.OPERATION_ID,
        )
    assert str(raised.value) == message


def test_wait_gives_up_at_its_deadline_saying_what_to_follow(api, monkeypatch):
    client, transport = api
    transport.answer(
        "POST",
        f"/v1/snapshots/{fakes.SNAPSHOT_ID}/action",
        202,
        {"operation": fakes.operation()},
    )
    transport.answer(
        "GET",
        OPERATION_PATH,
        200,
        {"operation": fakes.operation("running", 40, "restoring disks")},
    )
    # A clock that moves 10 s per look: the deadline, not the test's
    # time, ends the wait.
    ticks = itertools.count(0, 10)
    monkeypatch.setattr(common.time, "monotonic", lambda: next(ticks))

    app = fakes.make_app(client)
    status = fakes.run(
        snapshot.RestoreSnapshot,
        app,
        fakes.SNAPSHOT_ID,
        "--wait",
        "--wait-timeout",
        "60",
    )
    # Its own status: the restore goes on, it did not fail (1).
    assert status == common.WAIT_TIMEOUT_EXIT == 3
    assert app.stderr.getvalue().splitlines()[-1] == (
        f"Restore from snapshot {fakes.SNAPSHOT_ID}: running 40% "
        "(restoring disks), not finished after 60 s; it goes on. Follow "
        "it with 'openstack server snapshot operation show "
        f"{fakes.OPERATION_ID}'."
    )
    assert app.stdout.getvalue() == ""
    polls = transport.requests_to("GET", OPERATION_PATH)
    # Looked at every 10 s from the start; the sixth look is at 60 s.
    assert len(polls) == 6


def test_wait_timeout_must_be_whole_positive_seconds(capsys):
    with pytest.raises(SystemExit):
        fakes.run(
            snapshot.RestoreSnapshot,
            fakes.make_app(None),
            fakes.SNAPSHOT_ID,
            "--wait",
            "--wait-timeout",
            "0",
        )
    assert "'0' is not a whole number of seconds" in capsys.readouterr().err
