"""Servers Nova deleted, in the database an operator upgrades and reads.

On MariaDB:

* the migration that adds the release columns finds the rows the old
  conductor left behind (Nova said ``DELETED``, the delete was never
  recorded, the schedules kept firing), records their delete, stops
  their schedules and owes their release;
* ``snapmanager-manage release list|retry|abandon`` and the freshness
  check show and handle a pending release, as real processes.
"""

import datetime
import subprocess
import uuid

import pytest
import sqlalchemy as sa

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import context as sm_context
from snapmanager_nova.api import app
from snapmanager_nova.api import views
from snapmanager_nova.db import api as db_api
from snapmanager_nova.db import migration
from snapmanager_nova.db import models
from tests.fixtures.services import BIN
from tests.functional.db import test_freshness
from tests.unit.api import fakes
from tests.unit.api import test_openapi
from tests.unit.api.conftest import conf  # noqa: F401 (a fixture)
from tests.unit.api.test_openapi import document  # noqa: F401 (a fixture)
from tests.unit.api.test_openapi import registry  # noqa: F401 (a fixture)
from tests.unit.db import fixtures as db_fixtures

pytestmark = pytest.mark.functional

CONF = sm_conf.CONF

# The revision before the release columns.
BEFORE = "3f0c2a9d7b41"


@pytest.fixture
def engine(mariadb_database_url):
    with db_fixtures.database(mariadb_database_url) as engine:
        yield engine


def _stuck_row(connection, project):
    """A row as the old conductor left a server deleted while its agent
    could not release it, with an enabled schedule."""
    server = str(uuid.uuid4())
    now = datetime.datetime(2026, 12, 6, 9, 0)
    connection.execute(
        sa.text(
            "INSERT INTO instances (uuid, project_id, host, backend, "
            "snapshot_enabled, daily, keep_after_delete, committed, "
            "snapshot_index, root_index, nova_status, locked, "
            "boot_from_volume, nova_synced_at, created_at) VALUES (:uuid, "
            ":project, 'compute-1', 'rbd', 1, 0, 0, 1, 3, 0, :status, 0, "
            "0, :now, :now)"
        ),
        {"uuid": server, "project": project, "status": "DELETED", "now": now},
    )
    connection.execute(
        sa.text(
            "INSERT INTO schedules (id, instance_uuid, project_id, "
            "is_project_default, family, spec, timezone, retention, enabled, "
            "next_run_at, source, created_at) VALUES (:id, :uuid, :project, "
            "0, 'cron', 'cron:* * * * *', 'UTC', '{}', 1, :now, 'api', :now)"
        ),
        {
            "id": str(uuid.uuid4()),
            "uuid": server,
            "project": project,
            "now": now,
        },
    )
    return server


def manage(config, *args):
    return subprocess.run(
        [str(BIN / "snapmanager-manage"), "--config-file", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_upgrade_stops_the_old_loop_and_operators_see_it(
    engine, mariadb_database_url, tmp_path
):
    migration.upgrade(BEFORE)
    with engine.begin() as connection:
        stuck = _stuck_row(connection, "project-a")
    migration.upgrade("head")
    ctx = sm_context.get_admin_context()

    row = db_api.instance_get(ctx, stuck)
    assert row.deleted_at == datetime.datetime(
        2026, 12, 6, 9, 0, tzinfo=datetime.UTC
    )
    assert row.release_state == models.RELEASE_PENDING
    (schedule,) = db_api.schedule_list(ctx, instance_uuid=stuck)
    assert (schedule.enabled, schedule.next_run_at) == (False, None)
    assert db_api.schedule_get_due(ctx, models.utcnow()) == []
    # A live server is untouched.
    live = db_fixtures.make_instance(ctx, snapshot_enabled=True)
    assert db_api.instance_get(ctx, live.uuid).release_state is None

    config = tmp_path / "snapmanager.conf"
    config.write_text(f"[database]\nconnection = {mariadb_database_url}\n")
    listed = manage(config, "release", "list")
    assert listed.returncode == 1, listed.stderr
    assert listed.stdout.splitlines() == [
        f"PENDING server {stuck} project project-a deleted "
        "2026-12-06T09:00:00+00:00 tries 0 next try "
        f"{row.release_next_at.isoformat()}: not tried yet",
        "1 release(s) pending",
    ]
    fresh = manage(config, "freshness", "check")
    assert fresh.returncode == 1, fresh.stderr
    assert f"RELEASE PENDING server {stuck} project project-a" in fresh.stdout
    assert (
        manage(config, "freshness", "check", "--project", "b").returncode == 0
    )

    assert manage(config, "release", "retry", stuck).returncode == 0
    assert (
        db_api.instance_get(ctx, stuck).release_next_at > row.release_next_at
    )
    given_up = manage(
        config, "release", "abandon", stuck, "--reason", "host scrapped"
    )
    assert given_up.returncode == 0, given_up.stderr
    row = db_api.instance_get(ctx, stuck)
    assert row.release_state == models.RELEASE_ABANDONED
    assert row.release_error == "given up by an operator: host scrapped"
    assert manage(config, "release", "list").returncode == 0
    every = manage(config, "release", "list", "--all")
    assert every.stdout.startswith(f"ABANDONED server {stuck} ")
    # Nothing is pending any more: a second give-up is refused.
    again = manage(config, "release", "abandon", stuck, "--reason", "x")
    assert again.returncode == 2
    assert "no release pending" in again.stderr


def test_the_freshness_api_lists_pending_releases(conf, engine, registry):  # noqa: F811
    migration.upgrade("head")
    ctx = sm_context.get_admin_context()
    server = db_fixtures.make_instance(ctx, project_id="project-a")
    now = models.utcnow()
    assert db_api.instance_begin_release(ctx, server.uuid, now, now)
    assert db_api.instance_release_defer(
        ctx, server.uuid, 0, now, "the agent on compute-9 is down"
    )
    api = test_freshness.V12Client(
        app.create_app(
            CONF,
            nova_servers=fakes.FakeNovaServers(),
            compute_api=lambda: None,
            now=lambda: now,
        )
    )

    body = api.get("/v1/stale-servers", who=fakes.ADMIN).json
    (pending,) = body["release_pending"]
    assert pending == {
        "server_id": server.uuid,
        "server_name": None,
        "project_id": "project-a",
        "deleted_at": views.timestamp(now),
        "attempts": 1,
        "next_attempt_at": views.timestamp(now),
        "reason": "the agent on compute-9 is down",
    }
    test_openapi._validate(
        registry,
        {"$ref": "#/components/schemas/StaleServerList"},
        body,
        "GET /v1/stale-servers",
    )
    # Another project's check, and later pages, have none.
    other = api.get("/v1/stale-servers?project_id=b", who=fakes.ADMIN).json
    assert other["release_pending"] == []
