"""The schedule clock keeps to the projects' quotas (SQLite and MariaDB).

A window whose snapshot would take the project past a quota is not
taken: the clock records it as a failed snapshot saying why, which the
tenant sees among the server's snapshots. A rotating schedule at its
limit goes on rotating: the snapshot its retention will delete makes
room for the new one.
"""

import pytest

from snapmanager_nova import conf as sm_conf
from snapmanager_nova.db import api as db_api
from tests.functional.conductor.test_clock import at
from tests.functional.conductor.test_clock import ctx  # noqa: F401 fixture
from tests.functional.conductor.test_clock import daily
from tests.functional.conductor.test_clock import enabled_instance
from tests.functional.conductor.test_clock import make_clock
from tests.unit.db import fixtures as db_fixtures

CONF = sm_conf.CONF

REFUSED = "Quota exceeded for snapshots: the limit is 2 and 2 are in use."


@pytest.fixture
def quota_of_two():
    CONF.set_override("snapshots", 2, group="quota")
    yield
    CONF.clear_override("snapshots", group="quota")


def available(ctx, instance, schedule, *when):  # noqa: F811 (ctx)
    return db_fixtures.make_snapshot(
        ctx,
        instance,
        schedule,
        window_start=at(*when),
        status="available",
    )


def test_window_over_quota_is_recorded_as_refused(ctx, quota_of_two):  # noqa: F811
    instance = enabled_instance(ctx)
    sched = daily(ctx, instance, at(2026, 11, 22, 2, 0))
    # Kept by nothing that will delete them: taken on request.
    for day in (20, 21):
        db_fixtures.make_snapshot(
            ctx, instance, window_start=at(2026, 11, day), status="available"
        )
    clock, compute = make_clock(at(2026, 11, 22, 2, 0, 30))
    assert clock.tick(ctx) == []
    assert compute.casts == []
    (refused,) = db_api.snapshot_list(ctx, schedule_id=sched.id)
    assert refused.status == "error"
    assert refused.window_start == at(2026, 11, 22, 2, 0)
    assert (refused.error, refused.error_summary) == (REFUSED, REFUSED)
    # The clock moved on, and the window is not refused twice.
    assert db_api.schedule_get(ctx, sched.id).next_run_at == at(
        2026, 11, 23, 2, 0
    )
    db_api.schedule_update(
        ctx, sched.id, {"next_run_at": at(2026, 11, 22, 2, 0)}
    )
    assert clock.tick(ctx) == []
    assert len(db_api.snapshot_list(ctx, schedule_id=sched.id)) == 1


def test_rotating_schedule_at_its_limit_goes_on(ctx, quota_of_two):  # noqa: F811
    instance = enabled_instance(ctx)
    sched = db_fixtures.make_schedule(
        ctx,
        instance,
        spec="daily@02:00",
        retention={"keep_count": 2},
        next_run_at=at(2026, 11, 22, 2, 0),
    )
    for day in (20, 21):
        available(ctx, instance, sched, 2026, 11, day, 2, 0)
    clock, compute = make_clock(at(2026, 11, 22, 2, 0, 30))
    (dispatch,) = clock.tick(ctx)
    assert db_api.snapshot_get(ctx, dispatch.snapshot_id).status == (
        "creating"
    )
    assert len(compute.casts) == 1


def test_a_project_override_decides(ctx, quota_of_two):  # noqa: F811
    instance = enabled_instance(ctx, project_id="roomy")
    sched = daily(ctx, instance, at(2026, 11, 22, 2, 0))
    for day in (20, 21):
        db_fixtures.make_snapshot(
            ctx, instance, window_start=at(2026, 11, day), status="available"
        )
    db_api.project_quota_set(ctx, "roomy", {"snapshots": 3})
    clock, compute = make_clock(at(2026, 11, 22, 2, 0, 30))
    assert len(clock.tick(ctx)) == 1
    assert db_api.snapshot_list(ctx, schedule_id=sched.id)[0].status == (
        "creating"
    )
