"""Policies of snapshots and of restoring from them."""

from oslo_policy import policy

from snapmanager_nova.policies import base

PREFIX = "snapmanager:snapshot:%s"

rules = [
    policy.DocumentedRuleDefault(
        name=PREFIX % "list",
        check_str=base.PROJECT_READER_OR_ADMIN,
        description="List snapshots of a server or of the caller's project.",
        operations=[
            {"method": "GET", "path": "/v1/snapshots"},
            {"method": "GET", "path": "/v1/servers/{server_id}/snapshots"},
        ],
        scope_types=["project"],
    ),
    policy.DocumentedRuleDefault(
        name=PREFIX % "show",
        check_str=base.PROJECT_READER_OR_ADMIN,
        description="Show one snapshot.",
        operations=[{"method": "GET", "path": "/v1/snapshots/{snapshot_id}"}],
        scope_types=["project"],
    ),
    policy.DocumentedRuleDefault(
        name=PREFIX % "create",
        check_str=base.PROJECT_MEMBER_OR_ADMIN,
        description="Take a snapshot of a server now, outside its schedule.",
        operations=[
            {"method": "POST", "path": "/v1/servers/{server_id}/snapshots"}
        ],
        scope_types=["project"],
    ),
    policy.DocumentedRuleDefault(
        name=PREFIX % "delete",
        check_str=base.PROJECT_MEMBER_OR_ADMIN,
        description="Delete a snapshot.",
        operations=[
            {"method": "DELETE", "path": "/v1/snapshots/{snapshot_id}"}
        ],
        scope_types=["project"],
    ),
    policy.DocumentedRuleDefault(
        name=PREFIX % "restore",
        check_str=base.PROJECT_MEMBER_OR_ADMIN,
        description="Restore a server's disks from a snapshot. The server "
        "is locked and stopped for the duration.",
        operations=[
            {
                "method": "POST",
                "path": "/v1/snapshots/{snapshot_id}/action (restore)",
            }
        ],
        scope_types=["project"],
    ),
]


def list_rules():
    return rules
