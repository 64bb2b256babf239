"""The freshness check on real databases.

* The query's (server, schedule) pairs are the clock's targets, for
  every combination of the precedence levels, on SQLite and MariaDB.
* On MariaDB: which servers the check finds stale, by project and page
  by page; ``GET /v1/stale-servers`` answering from it; and
  ``snapmanager-manage freshness check`` as a real process, exiting 1
  for a stale server and 0 otherwise.
"""

import datetime
import itertools
import subprocess
import urllib.parse

import pytest
import referencing
import referencing.jsonschema
import sqlalchemy as sa
import yaml

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import context as sm_context
from snapmanager_nova import freshness
from snapmanager_nova.api import app
from snapmanager_nova.conductor import policy_file
from snapmanager_nova.db import api as db_api
from snapmanager_nova.db import migration
from snapmanager_nova.db import models
from tests.fixtures.services import BIN
from tests.functional.conductor.test_policy_file import ABSENT
from tests.functional.conductor.test_policy_file import DISABLED
from tests.functional.conductor.test_policy_file import ENABLED
from tests.functional.conductor.test_policy_file import add as _schedule
from tests.unit.api import fakes
from tests.unit.api import test_openapi
from tests.unit.api.conftest import ApiClient
from tests.unit.api.conftest import conf  # noqa: F401 (a fixture)
from tests.unit.db import fixtures as db_fixtures

pytestmark = pytest.mark.functional

CONF = sm_conf.CONF
UTC = datetime.UTC
NOW = datetime.datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
LONG_AGO = datetime.datetime(2026, 1, 1, tzinfo=UTC)
HOUR = datetime.timedelta(hours=1)


def backdate(ctx, model, key, created_at):
    """Set a row's ``created_at``, which the DB API always sets to now."""
    pk = sa.inspect(model).primary_key[0]
    with db_api.context_manager.writer.using(ctx) as session:
        session.execute(
            sa.update(model).where(pk == key).values(created_at=created_at)
        )


# The query agrees with the clock


@pytest.fixture
def any_ctx(database_url):
    with db_fixtures.database(database_url, create_schema=True):
        yield sm_context.get_admin_context()


def test_pairs_are_the_clocks_targets(any_ctx):
    ctx = any_ctx
    expected = set()
    cases = itertools.product(
        [False, True], *[[ABSENT, ENABLED, DISABLED]] * 4
    )
    for number, (snapshot_enabled, *states) in enumerate(cases):
        project = f"p{number:03d}"
        instance = db_fixtures.make_instance(
            ctx, project_id=project, snapshot_enabled=snapshot_enabled
        )
        own = {"instance_uuid": instance.uuid}
        default = {"project_id": project, "is_project_default": True}
        rows = [
            _schedule(ctx, states[0], "api", **own),
            _schedule(ctx, states[1], "operator", **own),
            _schedule(ctx, states[2], "api", **default),
            _schedule(ctx, states[3], "operator", **default),
        ]
        level = policy_file.deciding_level(
            snapshot_enabled, *[state == ENABLED for state in states]
        )
        levels = [
            policy_file.SERVER_TENANT,
            policy_file.SERVER_OPERATOR,
            policy_file.PROJECT_TENANT,
            policy_file.PROJECT_OPERATOR,
        ]
        for row_level, row in zip(levels, rows, strict=True):
            if row is not None and row.enabled and row_level == level:
                expected.add((instance.uuid, row.id))
    # A deleted server is nobody's.
    gone = db_fixtures.make_instance(ctx, project_id="p-gone")
    _schedule(ctx, ENABLED, "operator", instance_uuid=gone.uuid)
    db_api.instance_mark_deleted(ctx, gone.uuid, NOW)

    pairs = {
        (instance.uuid, row.id)
        for instance, row, _newest in db_api.schedule_freshness_list(ctx)
    }
    assert pairs == expected
    clock = {
        (instance.uuid, row.id)
        for row in db_api.schedule_list(ctx, enabled=True)
        for instance in db_api.schedule_targets_by_precedence(ctx, row)
    }
    assert pairs == clock


# Which servers are stale, on MariaDB


@pytest.fixture
def engine(mariadb_database_url):
    with db_fixtures.database(mariadb_database_url) as engine:
        migration.upgrade("head")
        yield engine


@pytest.fixture
def ctx(engine):
    return sm_context.get_admin_context()


def make_server(ctx, project="project-a", created_at=LONG_AGO, **values):
    values.setdefault("snapshot_enabled", True)
    instance = db_fixtures.make_instance(ctx, project_id=project, **values)
    backdate(ctx, models.Instance, instance.uuid, created_at)
    return instance


def make_schedule(ctx, created_at=LONG_AGO, spec="daily@02:30", **owner):
    row = db_api.schedule_create(
        ctx, dict(owner, family=spec.split("@")[0], spec=spec)
    )
    backdate(ctx, models.Schedule, row.id, created_at)
    return row


def take(ctx, instance, row, window, status=models.SNAPSHOT_AVAILABLE):
    snapshot = db_fixtures.make_snapshot(
        ctx, instance, row, window_start=window
    )
    if status != models.SNAPSHOT_CREATING:
        db_api.snapshot_update_status(ctx, snapshot.id, status)
    return snapshot


@pytest.fixture
def servers(ctx):
    """A fresh, three stale and four not-stale-for-a-reason servers."""
    today = datetime.datetime(2026, 3, 10, 2, 30, tzinfo=UTC)
    made = {}

    fresh = make_server(ctx)
    row = make_schedule(ctx, instance_uuid=fresh.uuid)
    take(ctx, fresh, row, today - datetime.timedelta(days=1))
    take(ctx, fresh, row, today)
    made["fresh"] = fresh

    old = make_server(ctx)
    row = make_schedule(ctx, instance_uuid=old.uuid)
    take(ctx, old, row, today - datetime.timedelta(days=2))
    # Neither a failed nor an unfinished snapshot makes it fresh.
    take(ctx, old, row, today - datetime.timedelta(days=1), "error")
    take(ctx, old, row, today, models.SNAPSHOT_CREATING)
    # Nor one taken on request.
    db_fixtures.make_snapshot(ctx, old, window_start=NOW - HOUR)
    made["old"] = old

    never = make_server(ctx)
    make_schedule(ctx, instance_uuid=never.uuid, spec="every@6h")
    made["never"] = never

    gone = make_server(ctx)
    make_schedule(ctx, instance_uuid=gone.uuid)
    db_api.instance_mark_deleted(ctx, gone.uuid, NOW - HOUR)

    new = make_server(ctx)
    make_schedule(ctx, NOW - HOUR, instance_uuid=new.uuid)

    off = make_server(ctx)
    row = make_schedule(ctx, instance_uuid=off.uuid)
    db_api.schedule_update(ctx, row.id, {"enabled": False})

    # Project b: a tenant default snapshots the server without a
    # schedule of its own; a new server of the project is not stale yet.
    by_default = make_server(ctx, project="project-b")
    make_schedule(
        ctx,
        spec="weekly@sun@03:00",
        project_id="project-b",
        is_project_default=True,
    )
    made["by_default"] = by_default
    make_server(ctx, project="project-b", created_at=NOW - HOUR)
    return made


def _ids(stale):
    return [server.server_id for server in stale]


def test_find_stale(ctx, servers):
    stale = freshness.find_stale(ctx, NOW, HOUR)
    expected = sorted(
        servers[name].uuid for name in ("old", "never", "by_default")
    )
    assert _ids(stale) == expected
    by_id = {server.server_id: server for server in stale}

    (old,) = by_id[servers["old"].uuid].schedules
    assert old.newest == datetime.datetime(2026, 3, 8, 2, 30, tzinfo=UTC)
    assert old.lateness.window == datetime.datetime(
        2026, 3, 10, 2, 30, tzinfo=UTC
    )
    assert old.lateness.late_by == datetime.timedelta(hours=8, minutes=30)

    (never,) = by_id[servers["never"].uuid].schedules
    assert never.newest is None
    assert never.schedule.spec == "every@6h"
    assert never.lateness.window == datetime.datetime(
        2026, 3, 10, 6, tzinfo=UTC
    )

    server = by_id[servers["by_default"].uuid]
    assert server.project_id == "project-b"
    (weekly,) = server.schedules
    assert weekly.schedule.is_project_default
    # Sunday 8 March at 03:00 is the latest weekly run.
    assert weekly.lateness.window == datetime.datetime(
        2026, 3, 8, 3, tzinfo=UTC
    )


def test_grace_project_and_pages(ctx, servers, monkeypatch):
    # With two days' grace, the snapshot of two days ago will do.
    two_days = freshness.find_stale(ctx, NOW, datetime.timedelta(days=2))
    assert _ids(two_days) == sorted(
        servers[name].uuid for name in ("never", "by_default")
    )
    only_b = freshness.find_stale(ctx, NOW, HOUR, project_id="project-b")
    assert _ids(only_b) == [servers["by_default"].uuid]
    everything = _ids(freshness.find_stale(ctx, NOW, HOUR))
    # Page by page, and with the database read one server at a time.
    monkeypatch.setattr(freshness, "BATCH_SIZE", 1)
    pages, marker = [], None
    while True:
        page = freshness.find_stale(ctx, NOW, HOUR, marker=marker, limit=2)
        pages.append(_ids(page))
        if len(page) < 2:
            break
        marker = page[-1].server_id
    assert sum(pages, []) == everything
    assert [len(page) for page in pages] == [2, 1]


# The API, on MariaDB


class V12Client(ApiClient):
    """Requests at microversion 1.2, which added the route."""

    def request(self, *args, **kwargs):
        headers = {"OpenStack-API-Version": "snapmanager 1.2"}
        return super().request(*args, headers=headers, **kwargs)


@pytest.fixture
def api(conf, engine):  # noqa: F811 (conf is the imported fixture)
    return V12Client(
        app.create_app(
            CONF,
            nova_servers=fakes.FakeNovaServers(),
            compute_api=lambda: None,
            now=lambda: NOW,
        )
    )


def test_stale_servers_api(api, servers, conf):  # noqa: F811
    resp = api.get("/v1/stale-servers?limit=2", who=fakes.ADMIN)
    assert resp.status_int == 200, resp.text
    body = resp.json
    expected = sorted(
        servers[name].uuid for name in ("old", "never", "by_default")
    )
    assert [item["server_id"] for item in body["stale_servers"]] == (
        expected[:2]
    )
    (link,) = body["stale_servers_links"]
    assert link["rel"] == "next"
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(link["href"]).query)
    assert query == {"limit": ["2"], "marker": [expected[1]]}
    rest = api.get(
        f"/v1/stale-servers?limit=2&marker={expected[1]}", who=fakes.ADMIN
    ).json
    # As doc/api/openapi.yaml describes them (the unit tests' walk
    # through the API finds no stale server to check).
    document = yaml.safe_load(test_openapi.OPENAPI.read_text())
    registry = referencing.Registry().with_resource(
        test_openapi.BASE_URI,
        referencing.Resource(
            contents=document,
            specification=referencing.jsonschema.DRAFT202012,
        ),
    )
    for page in (body, rest):
        test_openapi._validate(
            registry,
            {"$ref": "#/components/schemas/StaleServerList"},
            page,
            "GET /v1/stale-servers",
        )
    assert [item["server_id"] for item in rest["stale_servers"]] == (
        expected[2:]
    )
    assert rest["stale_servers_links"] == []

    old = next(
        item
        for item in body["stale_servers"] + rest["stale_servers"]
        if item["server_id"] == servers["old"].uuid
    )
    (late,) = old["schedules"]
    assert late == {
        "id": late["id"],
        "spec": "daily@02:30",
        "timezone": "UTC",
        "newest_snapshot_at": "2026-03-08T02:30:00Z",
        "expected_window": "2026-03-10T02:30:00Z",
        "expected_by": "2026-03-10T03:30:00Z",
        "late_by": 8 * 3600 + 30 * 60,
    }

    # The grace of the request, else of [freshness] grace.
    two_days = api.get(
        "/v1/stale-servers?grace=172800&project_id=project-a", who=fakes.ADMIN
    ).json
    assert [item["server_id"] for item in two_days["stale_servers"]] == [
        servers["never"].uuid
    ]
    conf.config(grace=2 * 86400, group="freshness")
    configured = api.get("/v1/stale-servers", who=fakes.ADMIN).json
    assert len(configured["stale_servers"]) == 2

    assert api.get("/v1/stale-servers", who=fakes.MEMBER).status_int == 403


# snapmanager-manage freshness check, as a monitoring system runs it


def manage_check(config, *args):
    return subprocess.run(
        [
            str(BIN / "snapmanager-manage"),
            "--config-file",
            str(config),
            "freshness",
            "check",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_manage_freshness_check_exit_status(
    ctx, mariadb_database_url, tmp_path
):
    config = tmp_path / "snapmanager.conf"
    config.write_text(f"[database]\nconnection = {mariadb_database_url}\n")
    result = manage_check(config)
    assert (result.returncode, result.stdout) == (
        0,
        "OK: no stale server (grace 3600 s)\n",
    ), result.stderr

    # A server whose daily schedule has had nothing for ten days.
    now = datetime.datetime.now(UTC)
    server = make_server(ctx, created_at=now - datetime.timedelta(days=10))
    row = make_schedule(
        ctx,
        created_at=now - datetime.timedelta(days=10),
        instance_uuid=server.uuid,
    )
    result = manage_check(config)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(
        f"STALE server {server.uuid} project project-a schedule {row.id} "
        "daily@02:30 UTC: newest snapshot none, expected by "
    )
    assert lines[-1] == "1 stale server(s) (grace 3600 s)"

    # Another project's check, or a grace of two days, pass.
    assert manage_check(config, "--project", "project-b").returncode == 0
    result = manage_check(config, "--grace", str(2 * 86400))
    assert result.returncode == 1  # ten days is more than two
    assert manage_check(config, "--grace", str(20 * 86400)).returncode == 0

    # Once the latest window's snapshot is available, all is well.
    take(ctx, server, row, now)
    result = manage_check(config)
    assert result.returncode == 0, result.stdout + result.stderr

    # A bad option is a usage error, not "stale".
    assert manage_check(config, "--grace", "-5").returncode == 2
