"""Policies of a server's snapshot policy (its schedules and retention)."""

from oslo_policy import policy

from snapmanager_nova.policies import base

PREFIX = "snapmanager:snapshot_policy:%s"
PATH = "/v1/servers/{server_id}/snapshot-policy"
DEFAULT_PATH = "/v1/projects/{project_id}/default-snapshot-policy"

rules = [
    policy.DocumentedRuleDefault(
        name=PREFIX % "show",
        check_str=base.PROJECT_READER_OR_ADMIN,
        description="Show a server's snapshot policy, or its project's "
        "default policy.",
        operations=[
            {"method": "GET", "path": PATH},
            {"method": "GET", "path": DEFAULT_PATH},
        ],
        scope_types=["project"],
    ),
    policy.DocumentedRuleDefault(
        name=PREFIX % "list",
        check_str=base.PROJECT_READER_OR_ADMIN,
        description="List the snapshot policies of the caller's project.",
        operations=[{"method": "GET", "path": "/v1/snapshot-policies"}],
        scope_types=["project"],
    ),
    policy.DocumentedRuleDefault(
        name=PREFIX % "list:all_projects",
        check_str=base.ADMIN,
        description="List snapshot policies across all projects.",
        operations=[
            {
                "method": "GET",
                "path": "/v1/snapshot-policies?all_projects=1",
            }
        ],
        scope_types=["project"],
    ),
    policy.DocumentedRuleDefault(
        name=PREFIX % "set",
        check_str=base.PROJECT_MEMBER_OR_ADMIN,
        description="Set (create or replace) a server's snapshot policy, or "
        "its project's default policy.",
        operations=[
            {"method": "PUT", "path": PATH},
            {"method": "PUT", "path": DEFAULT_PATH},
        ],
        scope_types=["project"],
    ),
    policy.DocumentedRuleDefault(
        name=PREFIX % "unset",
        check_str=base.PROJECT_MEMBER_OR_ADMIN,
        description="Remove a server's snapshot policy, or its project's "
        "default policy.",
        operations=[
            {"method": "DELETE", "path": PATH},
            {"method": "DELETE", "path": DEFAULT_PATH},
        ],
        scope_types=["project"],
    ),
]


def list_rules():
    return rules
