"""The operators' policy file on real databases and in a real conductor.

* The clock's query for an operator schedule's targets agrees with the
  precedence rule (``policy_file.deciding_level``) for every combination
  of levels, on SQLite and MariaDB.
* Conductors applying the file at once write each schedule once.
* A conductor process loads the file, reloads it when it changes, and
  keeps the previous policy when a new version is refused.
"""

import datetime
import itertools
import threading

import pytest

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import context as sm_context
from snapmanager_nova.conductor import clock as clock_mod
from snapmanager_nova.conductor import policy_file
from snapmanager_nova.db import api as db_api
from tests.fixtures.services import unique_host
from tests.fixtures.services import wait_until
from tests.functional.conductor import real_agent
from tests.unit.conductor import compute_fakes
from tests.unit.db import fixtures as db_fixtures

CONF = sm_conf.CONF
NOW = datetime.datetime(2026, 11, 22, 12, 0, tzinfo=datetime.UTC)
ABSENT, ENABLED, DISABLED = "absent", "enabled", "disabled"


@pytest.fixture
def ctx(database_url):
    with db_fixtures.database(database_url, create_schema=True):
        yield sm_context.get_admin_context()


def add(ctx, state, source, **owner):
    if state == ABSENT:
        return None
    return db_api.schedule_create(
        ctx,
        dict(
            owner,
            family="daily",
            spec="daily@02:00",
            source=source,
            enabled=state == ENABLED,
        ),
    )


def test_the_clocks_targets_follow_the_precedence_rule(ctx):
    levels = [
        policy_file.SERVER_TENANT,
        policy_file.SERVER_OPERATOR,
        policy_file.PROJECT_TENANT,
        policy_file.PROJECT_OPERATOR,
    ]
    cases = list(
        itertools.product(
            [False, True], *[[ABSENT, ENABLED, DISABLED]] * len(levels)
        )
    )
    checked = 0
    for number, (snapshot_enabled, *states) in enumerate(cases):
        project = f"p{number}"
        instance = db_fixtures.make_instance(
            ctx, project_id=project, snapshot_enabled=snapshot_enabled
        )
        own = {"instance_uuid": instance.uuid}
        default = {"project_id": project, "is_project_default": True}
        rows = dict(
            zip(
                levels,
                [
                    add(ctx, states[0], "api", **own),
                    add(ctx, states[1], "operator", **own),
                    add(ctx, states[2], "api", **default),
                    add(ctx, states[3], "operator", **default),
                ],
                strict=True,
            )
        )
        expected = policy_file.deciding_level(
            snapshot_enabled, *[state == ENABLED for state in states]
        )
        for level, row in rows.items():
            if row is None or not row.enabled:
                continue  # the clock only claims enabled schedules
            targets = db_api.schedule_targets_by_precedence(ctx, row)
            assert [t.uuid for t in targets] == (
                [instance.uuid] if level == expected else []
            ), (snapshot_enabled, states, level)
            checked += 1
    # Each of the 4 levels is enabled in a third of the 2 * 3**4 cases.
    assert checked == 2 * 4 * 3**3


def test_a_deleted_server_is_nobodys_target(ctx):
    instance = db_fixtures.make_instance(ctx, project_id="p1")
    own = add(ctx, ENABLED, "operator", instance_uuid=instance.uuid)
    default = add(
        ctx, ENABLED, "operator", project_id="p1", is_project_default=True
    )
    db_api.instance_mark_deleted(ctx, instance.uuid, NOW)
    for row in (own, default):
        assert db_api.schedule_targets_by_precedence(ctx, row) == []


def test_the_clock_snapshots_servers_by_the_operators_default(ctx):
    compute_fakes.agent_up(ctx)
    covered = db_fixtures.make_instance(ctx, project_id="p1", host="compute-1")
    own = db_fixtures.make_instance(
        ctx, project_id="p1", host="compute-1", snapshot_enabled=True
    )
    db_fixtures.make_schedule(ctx, own, spec="daily@03:00")
    policy_file.PolicyFileSync(now=lambda: NOW).apply(
        ctx, policy_file.parse("default: [7@2]\n")
    )
    (row,) = db_api.schedule_list_by_source(ctx, "operator")
    assert row.next_run_at == datetime.datetime(
        2026, 11, 23, 2, 0, tzinfo=datetime.UTC
    )
    compute = compute_fakes.FakeComputeAPI()
    clock = clock_mod.ScheduleClock(compute, now=lambda: row.next_run_at)
    (dispatch,) = clock.tick(ctx)
    assert dispatch.instance_uuid == covered.uuid
    snapshot = db_api.snapshot_get(ctx, dispatch.snapshot_id)
    assert snapshot.schedule_id == row.id
    assert [call[1] for call in compute.of("create")] == [covered.uuid]


def test_conductors_applying_at_once_write_each_schedule_once(
    mariadb_database_url,
):
    with db_fixtures.database(mariadb_database_url, create_schema=True):
        ctx = sm_context.get_admin_context()
        for number in range(20):
            db_fixtures.make_instance(ctx, project_id=f"p{number}")
        policy = policy_file.parse("default: [7@0, '4@sun@3']\n")
        barrier = threading.Barrier(4)
        errors = []

        def conductor():
            sync = policy_file.PolicyFileSync(now=lambda: NOW)
            try:
                barrier.wait()
                sync.apply(sm_context.get_admin_context(), policy)
            except Exception as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=conductor) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        rows = db_api.schedule_list_by_source(ctx, "operator")
        assert len(rows) == 40
        assert len({(row.project_id, row.spec) for row in rows}) == 40


# A conductor process with a policy file

private_bus = real_agent.private_bus


@pytest.fixture(scope="module")
def policy_conductor(private_bus, snapmanager_env, tmp_path_factory):
    path = tmp_path_factory.mktemp("policy") / "snap_sched.yaml"
    path.write_text("servers:\n  web-1: [7@0]\n")
    snapmanager_env.write_config(
        {
            "conductor": {
                "policy_file": str(path),
                "policy_file_interval": "1",
            }
        }
    )
    process = snapmanager_env.start(
        "snapmanager-conductor", unique_host("conductor")
    )
    return path, process, sm_context.get_admin_context()


def operator_specs(ctx):
    return sorted(
        (policy_file.owner_of(row), row.spec)
        for row in db_api.schedule_list_by_source(ctx, "operator")
    )


def test_a_conductor_follows_its_policy_file(
    snapmanager_env, policy_conductor
):
    path, process, ctx = policy_conductor
    web = db_fixtures.make_instance(ctx, project_id="p-web")
    db_api.instance_update_inventory(ctx, web.uuid, {"name": "web-1"}, NOW)
    tenant = db_fixtures.make_schedule(ctx, web, spec="daily@05:00")

    def specs_are(wanted):
        def check():
            assert process.poll() is None, snapmanager_env.log_tails()
            return operator_specs(ctx) == wanted

        return check

    # A server that appears later is picked up by name.
    wait_until(
        specs_are([(("server", web.uuid), "7")]),
        what="the server entry applied",
    )
    # An edit is reloaded.
    path.write_text("default: ['6@mon-fri@7,19']\n")
    wait_until(
        specs_are([(("project", "p-web"), "6@mon-fri@7,19")]),
        what="the edited file applied",
    )
    # A refused version leaves the previous one in force, and says why.
    path.write_text(
        "default: ['6@mon-fri@7,19']\nservers:\n  db:\n"
        "    - {spec: daily@02:00, retention: {max_age: 7x}}\n"
    )
    log = process.log
    wait_until(
        lambda: "servers.db[0].retention.max_age: '7x'" in log.read_text(),
        what="the refusal in the log",
    )
    assert operator_specs(ctx) == [(("project", "p-web"), "6@mon-fri@7,19")]
    assert "the previous policy stays in force" in log.read_text()
    # The tenant's schedule was never touched.
    assert db_api.schedule_get(ctx, tenant.id).source == "api"
