"""``snapmanager-manage service delete``, as a real process on MariaDB:
the retired host's file-backed snapshots are then gone-for-good holders
(doc/source/multihost.rst), and an agent reporting in brings them back."""

import pytest

from snapmanager_nova import context as sm_context
from snapmanager_nova.db import api as db_api
from snapmanager_nova.db import migration
from tests.functional.db.test_release_commands import engine  # noqa: F401
from tests.functional.db.test_release_commands import manage

pytestmark = pytest.mark.functional


def test_an_operator_retires_a_hosts_agent(
    engine,  # noqa: F811 (the fixture imported above)
    mariadb_database_url,
    tmp_path,
):
    migration.upgrade("head")
    ctx = sm_context.get_admin_context()
    db_api.service_heartbeat(ctx, db_api.COMPUTE_BINARY, "compute-old")
    db_api.service_heartbeat(ctx, db_api.COMPUTE_BINARY, "compute-new")
    config = tmp_path / "snapmanager.conf"
    config.write_text(f"[database]\nconnection = {mariadb_database_url}\n")

    done = manage(config, "service", "delete", "compute-old")
    assert done.returncode == 0, done.stderr
    assert "compute-old" in done.stdout
    assert db_api.snapshot_holders_gone(
        ctx, {"compute-old", "compute-new"}
    ) == {"compute-old"}
    again = manage(config, "service", "delete", "compute-old")
    assert again.returncode == 2
    assert "no compute agent" in again.stderr
    db_api.service_heartbeat(ctx, db_api.COMPUTE_BINARY, "compute-old")
    assert db_api.snapshot_holders_gone(ctx, {"compute-old"}) == set()
