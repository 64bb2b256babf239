"""``openstack server snapshot-policy``: options to request bodies, and
what the commands print."""

import json

import pytest
from osc_lib import exceptions

from snapmanager_nova.osc.v1 import snapshot_policy
from tests.unit.osc import fakes

POLICY_PATH = f"/v1/servers/{fakes.SERVER_ID}/snapshot-policy"
DEFAULT_PATH = f"/v1/projects/{fakes.PROJECT_ID}/default-snapshot-policy"


def parse(command_class, *argv):
    command = command_class(fakes.make_app(None), None)
    return command.get_parser("openstack").parse_args(list(argv))


def set_args(*argv):
    return parse(snapshot_policy.SetSnapshotPolicy, *argv, "web")


# Options to one schedule


@pytest.mark.parametrize(
    "argv, spec",
    [
        (["--daily", "02:30"], "daily@02:30"),
        (["--weekly", "sun@03:00"], "weekly@sun@03:00"),
        (["--monthly", "31@03:00"], "monthly@31@03:00"),
        (["--every", "6h"], "every@6h"),
        (["--every", "6h@02:15"], "every@6h@02:15"),
        (["--spec", "6@mon-fri@7,19"], "6@mon-fri@7,19"),
        (["--spec", "cron:0 3 * * sun"], "cron:0 3 * * sun"),
    ],
)
def test_schedule_shorthands(argv, spec):
    entry = snapshot_policy.schedule_from_args(set_args(*argv))
    assert entry == {"spec": spec}


def test_schedule_with_timezone_retention_and_state():
    args = set_args(
        "--daily",
        "02:30",
        "--timezone",
        "Europe/Berlin",
        "--keep",
        "7",
        "--max-age",
        "30d",
        "--keep-hourly",
        "24",
        "--keep-daily",
        "7",
        "--keep-weekly",
        "4",
        "--keep-monthly",
        "12",
        "--keep-yearly",
        "0",
        "--disable",
    )
    assert snapshot_policy.schedule_from_args(args) == {
        "spec": "daily@02:30",
        "timezone": "Europe/Berlin",
        "retention": {
            "keep_count": 7,
            "hourly": 24,
            "daily": 7,
            "weekly": 4,
            "monthly": 12,
            "yearly": 0,
            "max_age": "30d",
        },
        "enabled": False,
    }


def test_max_age_in_seconds_is_sent_as_a_number():
    args = set_args("--daily", "02:30", "--max-age", "604800", "--enable")
    entry = snapshot_policy.schedule_from_args(args)
    assert entry["retention"] == {"max_age": 604800}
    assert entry["enabled"] is True


def test_two_schedule_kinds_are_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exited:
        set_args("--daily", "02:30", "--weekly", "sun@03:00")
    assert exited.value.code == 2
    assert "--weekly" in capsys.readouterr().err


def test_details_without_a_schedule_are_named():
    args = set_args("--keep", "7", "--timezone", "UTC")
    with pytest.raises(exceptions.CommandError) as raised:
        snapshot_policy.schedule_from_args(args)
    assert str(raised.value).startswith("--timezone, --keep: needs a")


def test_add_without_a_schedule_is_named():
    with pytest.raises(exceptions.CommandError, match="^--add: needs"):
        snapshot_policy.schedule_from_args(set_args("--add"))


# A server's policy body, from the options and the policy there is


def test_set_replaces_the_schedules():
    current = fakes.policy(fakes.schedule(), fakes.schedule("every@6h"))
    body = snapshot_policy.policy_body(
        set_args("--weekly", "sun@03:00", "--keep", "4"), current
    )
    assert body == {
        "schedules": [
            {"spec": "weekly@sun@03:00", "retention": {"keep_count": 4}}
        ],
        "keep_after_delete": False,
    }


def test_set_on_a_server_without_policy_sends_no_keep_after_delete():
    body = snapshot_policy.policy_body(set_args("--daily", "02:30"), None)
    assert body == {"schedules": [{"spec": "daily@02:30"}]}


def test_add_keeps_the_others_as_stored():
    daily = fakes.schedule()
    current = fakes.policy(daily, keep_after_delete=True)
    body = snapshot_policy.policy_body(
        set_args("--add", "--every", "6h"), current
    )
    assert body == {
        "schedules": [
            {
                "spec": "daily@02:30",
                "timezone": "Europe/Berlin",
                "retention": {"keep_count": 7, "max_age": 2592000},
                "enabled": True,
            },
            {"spec": "every@6h"},
        ],
        "keep_after_delete": True,
    }


def test_add_updates_the_schedule_with_the_same_canonical_spec():
    current = fakes.policy(fakes.schedule(), fakes.schedule("every@6h", "UTC"))
    args = set_args(
        "--add",
        "--spec",
        "Daily @ 2:30",
        "--timezone",
        "Europe/Berlin",
        "--keep",
        "3",
    )
    body = snapshot_policy.policy_body(args, current)
    assert [s["spec"] for s in body["schedules"]] == [
        "every@6h",
        "Daily @ 2:30",
    ]
    assert body["schedules"][1]["retention"] == {"keep_count": 3}


def test_add_in_another_timezone_is_another_schedule():
    current = fakes.policy(fakes.schedule())
    body = snapshot_policy.policy_body(
        set_args("--add", "--daily", "02:30"), current
    )
    assert len(body["schedules"]) == 2


def test_add_of_an_invalid_spec_is_left_to_the_api():
    current = fakes.policy(fakes.schedule())
    body = snapshot_policy.policy_body(
        set_args("--add", "--daily", "25:00"), current
    )
    assert body["schedules"][-1] == {"spec": "daily@25:00"}
    assert len(body["schedules"]) == 2


def test_keep_after_delete_alone_keeps_the_schedules():
    current = fakes.policy(fakes.schedule())
    body = snapshot_policy.policy_body(
        set_args("--keep-after-delete"), current
    )
    assert body["keep_after_delete"] is True
    assert [s["spec"] for s in body["schedules"]] == ["daily@02:30"]


def test_no_keep_after_delete_overrides_the_current_value():
    current = fakes.policy(keep_after_delete=True)
    body = snapshot_policy.policy_body(
        set_args("--no-keep-after-delete"), current
    )
    assert body == {"schedules": [], "keep_after_delete": False}


def test_use_project_default_drops_own_schedules():
    current = fakes.policy(fakes.schedule())
    body = snapshot_policy.policy_body(
        set_args("--use-project-default"), current
    )
    assert body == {"schedules": [], "keep_after_delete": False}


def test_use_project_default_with_a_schedule_is_refused():
    with pytest.raises(exceptions.CommandError, match="--use-project"):
        snapshot_policy.policy_body(
            set_args("--use-project-default", "--daily", "02:30"), None
        )


def test_remove_schedules_by_id_and_by_spec():
    daily = fakes.schedule()
    every = fakes.schedule("every@6h", "UTC")
    weekly = fakes.schedule("weekly@sun@03:00", "UTC")

    by_id = snapshot_policy.remove_schedules([daily, every], [daily["id"]])
    by_spec = snapshot_policy.remove_schedules(
        [daily, every, weekly], ["Every@6H", "weekly@sun@03:00"]
    )

    assert [s["spec"] for s in by_id] == ["every@6h"]
    assert [s["spec"] for s in by_spec] == ["daily@02:30"]


def test_remove_an_unknown_schedule_is_an_error():
    with pytest.raises(exceptions.CommandError, match="'every@6h'"):
        snapshot_policy.remove_schedules([fakes.schedule()], ["every@6h"])


def test_default_needs_a_schedule():
    args = parse(snapshot_policy.SetDefaultSnapshotPolicy)
    with pytest.raises(exceptions.CommandError, match="needs a schedule"):
        snapshot_policy.default_policy_body(args, None)


# The commands, against the fake HTTP layer


@pytest.fixture
def api():
    return fakes.make_client()


def test_set_resolves_the_server_and_puts_the_body(api):
    client, transport = api
    transport.answer("GET", POLICY_PATH, *fakes.error(404, "none"))
    transport.answer(
        "PUT", POLICY_PATH, 200, {"snapshot_policy": fakes.policy()}
    )
    app = fakes.make_app(client)

    fakes.run(
        snapshot_policy.SetSnapshotPolicy,
        app,
        "--daily",
        "02:00",
        "--timezone",
        "Europe/Berlin",
        "--keep",
        "7",
        "web",
    )

    (put,) = transport.requests_to("PUT", POLICY_PATH)
    assert put.body == {
        "schedules": [
            {
                "spec": "daily@02:00",
                "timezone": "Europe/Berlin",
                "retention": {"keep_count": 7},
            }
        ]
    }
    assert app.stdout.getvalue() == ""


def test_a_missing_server_is_named_and_nothing_is_sent(api):
    client, transport = api
    app = fakes.make_app(client)

    with pytest.raises(exceptions.CommandError) as raised:
        fakes.run(
            snapshot_policy.SetSnapshotPolicy, app, "--daily", "02:00", "db"
        )
    assert str(raised.value) == "No server with a name or ID of 'db' exists."
    assert transport.sent == []


def test_unset_deletes_the_policy(api):
    client, transport = api
    transport.answer("DELETE", POLICY_PATH, 204)

    fakes.run(
        snapshot_policy.UnsetSnapshotPolicy, fakes.make_app(client), "web"
    )

    assert [r.method for r in transport.sent] == ["DELETE"]


def test_unset_schedule_puts_the_rest(api):
    client, transport = api
    daily, every = fakes.schedule(), fakes.schedule("every@6h", "UTC")
    current = fakes.policy(daily, every, keep_after_delete=True)
    transport.answer("GET", POLICY_PATH, 200, {"snapshot_policy": current})
    transport.answer("PUT", POLICY_PATH, 200, {"snapshot_policy": current})

    fakes.run(
        snapshot_policy.UnsetSnapshotPolicy,
        fakes.make_app(client),
        "--schedule",
        daily["id"],
        "web",
    )

    (put,) = transport.requests_to("PUT", POLICY_PATH)
    assert put.body["keep_after_delete"] is True
    assert [s["spec"] for s in put.body["schedules"]] == ["every@6h"]


def test_show_as_json_keeps_the_structure(api):
    client, transport = api
    stored = fakes.policy(fakes.schedule())
    transport.answer("GET", POLICY_PATH, 200, {"snapshot_policy": stored})
    app = fakes.make_app(client)

    fakes.run(snapshot_policy.ShowSnapshotPolicy, app, "-f", "json", "web")

    assert json.loads(app.stdout.getvalue()) == stored


def test_show_as_a_table_has_a_line_per_schedule(api):
    client, transport = api
    daily = fakes.schedule()
    disabled = fakes.schedule(
        "every@6h", "UTC", enabled=False, retention={}, next_run_at=None
    )
    stored = fakes.policy(daily, disabled)
    transport.answer("GET", POLICY_PATH, 200, {"snapshot_policy": stored})
    app = fakes.make_app(client)

    fakes.run(snapshot_policy.ShowSnapshotPolicy, app, "web")

    table = app.stdout.getvalue()
    assert (
        "| schedules            | daily@02:30 Europe/Berlin, keep_count=7 "
        f"max_age=30d, next 2026-03-29T01:00:00Z, id {daily['id']} |"
    ) in table
    assert f"| every@6h UTC, keep all, disabled, id {disabled['id']}" in table


def test_list_columns_and_all_projects(api):
    client, transport = api
    stored = fakes.policy(fakes.schedule(), fakes.schedule("every@6h", "UTC"))
    page = {"snapshot_policies": [stored], "snapshot_policies_links": []}
    transport.answer("GET", "/v1/snapshot-policies", 200, page)
    app = fakes.make_app(client)

    fakes.run(
        snapshot_policy.ListSnapshotPolicy,
        app,
        "--all-projects",
        "-f",
        "json",
    )

    assert transport.sent[0].query == {"all_projects": ["1"]}
    (row,) = json.loads(app.stdout.getvalue())
    assert list(row) == [
        "Server ID",
        "Server Name",
        "Project ID",
        "Schedules",
        "Uses Project Default",
        "Keep After Delete",
    ]
    assert row["Server Name"] == fakes.SERVER_NAME
    assert row["Project ID"] == fakes.PROJECT_ID
    assert row["Schedules"] == stored["schedules"]


def test_list_table_shows_spec_and_timezone(api):
    client, transport = api
    stored = fakes.policy(fakes.schedule(), fakes.schedule("every@6h", "UTC"))
    page = {"snapshot_policies": [stored], "snapshot_policies_links": []}
    transport.answer("GET", "/v1/snapshot-policies", 200, page)
    app = fakes.make_app(client)

    fakes.run(snapshot_policy.ListSnapshotPolicy, app, "-c", "Schedules")

    assert app.stdout.getvalue().splitlines()[3:5] == [
        "| daily@02:30 Europe/Berlin |",
        "| every@6h UTC              |",
    ]


def test_default_set_add_merges_with_the_current_defaults(api):
    client, transport = api
    current = {"project_id": fakes.PROJECT_ID, "schedules": [fakes.schedule()]}
    answer = {"default_snapshot_policy": current}
    transport.answer("GET", DEFAULT_PATH, 200, answer)
    transport.answer("PUT", DEFAULT_PATH, 200, answer)

    fakes.run(
        snapshot_policy.SetDefaultSnapshotPolicy,
        fakes.make_app(client),
        "--add",
        "--every",
        "12h",
        "--project",
        "demo",
    )

    (put,) = transport.requests_to("PUT", DEFAULT_PATH)
    assert [s["spec"] for s in put.body["schedules"]] == [
        "daily@02:30",
        "every@12h",
    ]


def test_default_unset_of_the_last_schedule_deletes_the_default(api):
    client, transport = api
    current = {"project_id": fakes.PROJECT_ID, "schedules": [fakes.schedule()]}
    transport.answer(
        "GET", DEFAULT_PATH, 200, {"default_snapshot_policy": current}
    )
    transport.answer("DELETE", DEFAULT_PATH, 204)

    fakes.run(
        snapshot_policy.UnsetDefaultSnapshotPolicy,
        fakes.make_app(client),
        "--schedule",
        "daily@02:30",
    )

    assert [r.method for r in transport.sent] == ["GET", "DELETE"]


def test_default_show_of_the_current_project(api):
    client, transport = api
    current = {"project_id": fakes.PROJECT_ID, "schedules": [fakes.schedule()]}
    transport.answer(
        "GET", DEFAULT_PATH, 200, {"default_snapshot_policy": current}
    )
    app = fakes.make_app(client)

    fakes.run(snapshot_policy.ShowDefaultSnapshotPolicy, app, "-f", "json")

    assert json.loads(app.stdout.getvalue()) == current
