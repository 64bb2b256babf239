"""The ``openstack`` CLI with Snapmanager's plugin, end to end.

Every command runs as its own ``openstack --os-cloud <user>`` process
against the real snapmanager-api, Keystone and Nova of the mini-cloud
(the API found through the service catalog), with the conductor and the
compute agent doing the work: what a tenant types is what is tested.
"""

import json

import pytest

USER = "demo"
# restore --wait follows the conductor locking, stopping, restoring,
# starting and unlocking a TCG guest on a shared 2-core machine.
RESTORE_TIMEOUT = 600


@pytest.fixture(scope="module")
def server(snapmanager_cloud):
    return snapmanager_cloud.create_server(USER, "osc")


def refused(cloud, user, *args):
    """Run a command that must fail; its stderr."""
    result = cloud.cli(user, *args, check=False)
    assert result.returncode == 1, (result.returncode, result.stdout)
    assert result.stdout == ""
    return result.stderr


def test_policy_by_server_name(snapmanager_cloud, server):
    cloud = snapmanager_cloud
    cloud.cli(
        USER,
        "server",
        "snapshot-policy",
        "set",
        "--daily",
        "02:00",
        "--timezone",
        "Europe/Berlin",
        "--keep",
        "7",
        server.name,
    )
    shown = cloud.cli_json(
        USER, "server", "snapshot-policy", "show", server.name
    )
    assert shown["server_id"] == server.id
    assert shown["keep_after_delete"] is False
    assert shown["uses_project_default"] is False
    (daily,) = shown["schedules"]
    assert (daily["spec"], daily["timezone"]) == (
        "daily@02:00",
        "Europe/Berlin",
    )
    assert daily["retention"] == {"keep_count": 7}
    assert daily["enabled"] is True
    assert daily["next_run_at"] is not None

    # A second schedule joins the first; the flag alone keeps both.
    cloud.cli(
        USER,
        "server",
        "snapshot-policy",
        "set",
        "--add",
        "--every",
        "6h",
        "--max-age",
        "2d",
        "--disable",
        server.name,
    )
    cloud.cli(
        USER,
        "server",
        "snapshot-policy",
        "set",
        "--keep-after-delete",
        server.name,
    )
    shown = cloud.cli_json(
        USER, "server", "snapshot-policy", "show", server.name
    )
    assert shown["keep_after_delete"] is True
    schedules = {s["spec"]: s for s in shown["schedules"]}
    assert set(schedules) == {"daily@02:00", "every@6h"}
    assert schedules["daily@02:00"]["id"] == daily["id"]
    assert schedules["every@6h"]["retention"] == {"max_age": 172800}
    assert schedules["every@6h"]["enabled"] is False

    # The table has a line per schedule.
    table = cloud.cli(
        USER, "server", "snapshot-policy", "show", server.name
    ).stdout
    assert "daily@02:00 Europe/Berlin, keep_count=7" in table
    assert "every@6h UTC, max_age=2d, disabled" in table

    # demo's reader reads it, and may not change it.
    listed = cloud.cli_json("demo-reader", "server", "snapshot-policy", "list")
    (row,) = [r for r in listed if r["Server ID"] == server.id]
    assert len(row["Schedules"]) == 2
    assert row["Keep After Delete"] is True
    refused(
        cloud, "demo-reader", "server", "snapshot-policy", "unset", server.name
    )

    cloud.cli(
        USER,
        "server",
        "snapshot-policy",
        "unset",
        "--schedule",
        "every@6h",
        server.name,
    )
    shown = cloud.cli_json(
        USER, "server", "snapshot-policy", "show", server.name
    )
    assert [s["spec"] for s in shown["schedules"]] == ["daily@02:00"]
    assert shown["keep_after_delete"] is True

    cloud.cli(USER, "server", "snapshot-policy", "unset", server.name)
    error = refused(
        cloud, USER, "server", "snapshot-policy", "show", server.name
    )
    assert f"Server {server.id} has no snapshot policy." in error
    listed = cloud.cli_json(USER, "server", "snapshot-policy", "list")
    assert server.id not in [r["Server ID"] for r in listed]


def test_bad_input_names_the_field_and_writes_nothing(
    snapmanager_cloud, server
):
    cloud = snapmanager_cloud
    policy = ("server", "snapshot-policy")
    cloud.cli(USER, *policy, "set", "--weekly", "sun@03:00", server.name)
    before = cloud.cli_json(USER, *policy, "show", server.name)

    error = refused(
        cloud, USER, *policy, "set", "--daily", "25:00", server.name
    )
    assert "schedules[0].spec" in error
    assert "'25:00'" in error

    error = refused(
        cloud,
        USER,
        *policy,
        "set",
        "--daily",
        "02:00",
        "--timezone",
        "Mars/Base",
        server.name,
    )
    assert "schedules[0].timezone" in error
    assert "Mars/Base" in error

    error = refused(
        cloud,
        USER,
        *policy,
        "set",
        "--keep",
        "0",
        "--daily",
        "02:00",
        server.name,
    )
    assert "schedules[0].retention.keep_count" in error

    # Refused before any request.
    error = refused(cloud, USER, *policy, "set", "--keep", "3", server.name)
    assert "--keep: needs a schedule" in error

    assert cloud.cli_json(USER, *policy, "show", server.name) == before
    cloud.cli(USER, *policy, "unset", server.name)


def test_missing_server_name(snapmanager_cloud):
    error = refused(
        snapmanager_cloud,
        USER,
        "server",
        "snapshot-policy",
        "set",
        "--daily",
        "02:00",
        "no-such-server",
    )
    assert "No server with a name or ID of 'no-such-server' exists." in error


def test_snapshot_create_list_restore_delete(snapmanager_cloud, server):
    cloud = snapmanager_cloud
    snapshot = ("server", "snapshot")

    result = cloud.cli(
        USER, *snapshot, "create", server.name, "--wait", "-f", "json"
    )
    created = json.loads(result.stdout)
    assert created["status"] == "available"
    assert created["server_id"] == server.id
    assert created["schedule_id"] is None
    assert created["size_bytes"] > 0
    # The progress went to stderr, ending with the snapshot available.
    assert result.stderr.splitlines()[-1].endswith(
        ("succeeded 100% (done)", "succeeded 100% (available)")
    )

    listed = cloud.cli_json(USER, *snapshot, "list", server.name)
    assert {"ID": created["id"], "Status": "available"}.items() <= next(
        row for row in listed if row["ID"] == created["id"]
    ).items()

    # Another project sees neither the server nor its snapshots.
    error = refused(cloud, "other", *snapshot, "list", server.name)
    assert f"No server with a name or ID of '{server.name}' exists." in error
    error = refused(cloud, "other", *snapshot, "list", server.id)
    assert f"Server {server.id} could not be found." in error
    not_found = f"Snapshot {created['id']} could not be found."
    assert not_found in refused(
        cloud, "other", *snapshot, "show", created["id"]
    )
    assert not_found in refused(
        cloud, "other", *snapshot, "restore", created["id"]
    )
    assert not_found in refused(
        cloud, "other", *snapshot, "delete", created["id"]
    )

    restored = cloud.cli_json(
        USER,
        *snapshot,
        "restore",
        created["id"],
        "--wait",
        timeout=RESTORE_TIMEOUT,
    )
    assert restored["type"] == "restore"
    assert restored["state"] == "succeeded"
    assert restored["progress"] == 100
    admin = cloud.connect("admin")
    after = admin.compute.get_server(server.id)
    assert after.status == "ACTIVE"
    assert after.is_locked is False

    cloud.cli(USER, *snapshot, "delete", created["id"], "--wait")
    listed = cloud.cli_json(USER, *snapshot, "list", server.name)
    assert created["id"] not in [row["ID"] for row in listed]
    deleted = cloud.cli_json(
        USER, *snapshot, "list", server.name, "--status", "deleted"
    )
    assert created["id"] in [row["ID"] for row in deleted]


def test_project_default(snapmanager_cloud):
    cloud = snapmanager_cloud
    default = ("server", "snapshot-policy", "default")
    project_id = cloud.connect(USER).current_project_id
    # Disabled: the defaults must not snapshot demo's other servers.
    cloud.cli(
        USER,
        *default,
        "set",
        "--weekly",
        "sun@03:00",
        "--keep",
        "4",
        "--disable",
    )
    cloud.cli(USER, *default, "set", "--add", "--every", "12h", "--disable")

    shown = cloud.cli_json(USER, *default, "show")
    assert shown["project_id"] == project_id
    assert [
        (s["spec"], s["retention"], s["enabled"]) for s in shown["schedules"]
    ] == [
        ("weekly@sun@03:00", {"keep_count": 4}, False),
        ("every@12h", {}, False),
    ]
    # An admin names the project; another project may not read it.
    assert cloud.cli_json("admin", *default, "show", "--project", "demo") == (
        shown
    )
    refused(cloud, "other", *default, "show", "--project", project_id)

    cloud.cli(USER, *default, "unset", "--schedule", "every@12h")
    shown = cloud.cli_json(USER, *default, "show")
    assert [s["spec"] for s in shown["schedules"]] == ["weekly@sun@03:00"]
    cloud.cli(USER, *default, "unset")
    error = refused(cloud, USER, *default, "show")
    assert f"Project {project_id} has no default snapshot policy." in error
