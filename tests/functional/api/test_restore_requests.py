"""Restore requests racing each other, against snapmanager-api on MariaDB.

Two tenants' requests to restore the same server (from two of its
snapshots) arrive together. The test makes them overlap in the worst
way the database allows: it holds a lock that stops both at their
INSERT of the operation, after each has read that the server has no
unfinished restore, and lets them go only once MariaDB shows both
waiting. Exactly one restore may come out of it, or the first to finish
would unlock the server in the middle of the other.
"""

import concurrent.futures
import json
import uuid

import pytest
import sqlalchemy as sa

from snapmanager_nova import context as sm_context
from snapmanager_nova.db import api as db_api
from tests.fixtures.services import wait_until
from tests.functional.api import test_api_service
from tests.functional.api.test_api_service import MEMBER
from tests.functional.api.test_api_service import call

pytestmark = pytest.mark.functional


# The module's snapmanager-api (noauth) and its Nova stand-in.
api_url = test_api_service.noauth_api
nova_stub = test_api_service.nova_stub


def available_snapshot(ctx, server_id):
    index = db_api.instance_allocate_snapshot_index(ctx, server_id)
    snapshot = db_api.snapshot_create(
        ctx,
        {
            "instance_uuid": server_id,
            "snapshot_index": index,
            "backend": "file",
        },
    )
    return db_api.snapshot_update_status(
        ctx,
        snapshot.id,
        "available",
        disks=[{"target": "vda", "path": "/store/vda", "size": 1}],
    )


def lock_waits(engine):
    """Transactions of this database waiting for a lock right now."""
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT COUNT(*) FROM information_schema.INNODB_TRX t "
                "JOIN information_schema.PROCESSLIST p "
                "ON p.ID = t.trx_mysql_thread_id "
                "WHERE t.trx_state = 'LOCK WAIT' AND p.DB = DATABASE()"
            )
        ).scalar()


def test_two_concurrent_restores_of_one_server_make_one(
    snapmanager_env, api_url, nova_stub
):
    ctx = sm_context.get_admin_context()
    server_id = str(uuid.uuid4())
    nova_stub.add(server_id, "demo", host="compute-1")
    db_api.instance_create_or_update(
        ctx, server_id, {"project_id": "demo", "host": "compute-1"}
    )
    snapshots = [available_snapshot(ctx, server_id) for _ in range(2)]
    engine = sa.create_engine(
        snapmanager_env.database_url, poolclass=sa.pool.NullPool
    )
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            with engine.connect() as blocker:
                # A locking read of the server's operations: under
                # REPEATABLE READ it locks the index gap where their
                # rows would go, so every INSERT of one waits for it.
                blocker.execute(
                    sa.text(
                        "SELECT id FROM operations WHERE instance_uuid = :u "
                        "FOR UPDATE"
                    ),
                    {"u": server_id},
                )
                answers = [
                    pool.submit(
                        call,
                        f"{api_url}/v1/snapshots/{snapshot.id}/action",
                        "POST",
                        {"restore": {}},
                        MEMBER,
                    )
                    for snapshot in snapshots
                ]
                wait_until(
                    lambda: lock_waits(engine) == 2,
                    what="both restore requests waiting to insert",
                )
                blocker.rollback()
            results = [answer.result(timeout=60) for answer in answers]
    finally:
        engine.dispose()
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [202, 409], results
    (refused,) = [body for status, _, body in results if status == 409]
    message = json.loads(refused)["error"]["message"]
    assert server_id in message
    unfinished = db_api.operation_list(
        ctx, instance_uuid=server_id, state=["pending", "running"]
    )
    assert len(unfinished) == 1
