"""Errors as tenants see them, and as admins do.

A failure's full text (an agent's exception: host names, paths, library
output) is for operators; a tenant is told what happened.
"""

import pytest
from oslo_policy import opts as policy_opts

from snapmanager_nova import policy
from snapmanager_nova.db import api as db_api
from snapmanager_nova.db import models
from tests.unit.api import fakes
from tests.unit.api.helpers import record_snapshot

DETAIL = (
    "Command: rbd snap create vms/3f2c_disk@sm-4 on compute-7.example.org: "
    "librbd::Operations: /var/lib/ceph/osd/ceph-3 is full"
)
LEAKS = ("compute-7", "/var/lib", "librbd", "rbd snap")


def _tenant_text(text):
    assert not any(leak in text for leak in LEAKS), text
    return text


@pytest.fixture
def failed_snapshot(ctx, nova):
    server = nova.add()
    return record_snapshot(
        ctx, server, status=models.SNAPSHOT_ERROR, error=DETAIL
    )


@pytest.mark.parametrize("who", [fakes.MEMBER, fakes.READER])
def test_tenant_sees_what_happened_not_the_detail(api, failed_snapshot, who):
    shown = api.get(f"/v1/snapshots/{failed_snapshot.id}", who=who).json
    assert _tenant_text(shown["snapshot"]["error"]) == (
        "The snapshot could not be taken. The details are logged for the "
        "operators."
    )
    listed = api.get("/v1/snapshots", who=who).json["snapshots"]
    assert [row["error"] for row in listed] == [shown["snapshot"]["error"]]


def test_admin_sees_the_detail(api, failed_snapshot):
    shown = api.get(f"/v1/snapshots/{failed_snapshot.id}", who=fakes.ADMIN)
    assert shown.json["snapshot"]["error"] == DETAIL
    listed = api.get(
        f"/v1/servers/{failed_snapshot.instance_uuid}/snapshots",
        who=fakes.ADMIN,
    ).json["snapshots"]
    assert [row["error"] for row in listed] == [DETAIL]


def test_a_failed_delete_says_so(api, ctx, nova):
    server = nova.add()
    snapshot = record_snapshot(ctx, server, status=models.SNAPSHOT_DELETING)
    db_api.snapshot_update_status(
        ctx, snapshot.id, models.SNAPSHOT_ERROR, error=DETAIL
    )
    shown = api.get(f"/v1/snapshots/{snapshot.id}").json["snapshot"]
    assert _tenant_text(shown["error"]).startswith(
        "The snapshot could not be deleted."
    )


def test_a_summary_written_for_tenants_is_shown_to_them(api, ctx, nova):
    server = nova.add()
    snapshot = record_snapshot(
        ctx,
        server,
        status=models.SNAPSHOT_ERROR,
        error=DETAIL,
        error_summary="Quota exceeded for snapshots: the limit is 2.",
    )
    shown = api.get(f"/v1/snapshots/{snapshot.id}").json["snapshot"]
    assert shown["error"] == "Quota exceeded for snapshots: the limit is 2."
    admin = api.get(f"/v1/snapshots/{snapshot.id}", who=fakes.ADMIN).json
    assert admin["snapshot"]["error"] == DETAIL


def test_an_operations_error_likewise(api, ctx, nova):
    server = nova.add()
    snapshot = record_snapshot(ctx, server)
    operation = db_api.operation_create(
        ctx,
        {
            "type": "delete",
            "instance_uuid": server.id,
            "snapshot_id": snapshot.id,
        },
    )
    db_api.operation_update(
        ctx, operation.id, {"state": "failed", "error": DETAIL}
    )
    path = f"/v1/operations/{operation.id}"
    member = api.get(path).json["operation"]
    assert _tenant_text(member["error"]) == (
        "The snapshot could not be deleted. The details are logged for the "
        "operators."
    )
    assert api.get(path, who=fakes.ADMIN).json["operation"]["error"] == (
        DETAIL
    )


def test_no_error_is_no_error(api, ctx, nova):
    server = nova.add()
    snapshot = record_snapshot(ctx, server)
    assert (
        api.get(f"/v1/snapshots/{snapshot.id}").json["snapshot"]["error"]
        is None
    )


def test_the_rule_decides(api, failed_snapshot, conf, tmp_path):
    # An operator may let a project's own members see the detail.
    path = tmp_path / "policy.yaml"
    path.write_text('"snapmanager:error_detail:show": "role:member"\n')
    policy_opts.set_defaults(conf.conf)
    conf.config(policy_file=str(path), group="oslo_policy")
    policy.reset()
    shown = api.get(f"/v1/snapshots/{failed_snapshot.id}").json
    assert shown["snapshot"]["error"] == DETAIL
    reader = api.get(f"/v1/snapshots/{failed_snapshot.id}", who=fakes.READER)
    assert reader.json["snapshot"]["error"] != DETAIL
