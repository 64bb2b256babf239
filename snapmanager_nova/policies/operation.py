"""Policies of operations (restore, delete, on-demand snapshot progress)."""

from oslo_policy import policy

from snapmanager_nova.policies import base

rules = [
    policy.DocumentedRuleDefault(
        name="snapmanager:operation:show",
        check_str=base.PROJECT_READER_OR_ADMIN,
        description="Show an operation's state and progress.",
        operations=[
            {"method": "GET", "path": "/v1/operations/{operation_id}"}
        ],
        scope_types=["project"],
    ),
    policy.DocumentedRuleDefault(
        name="snapmanager:operation:retry",
        check_str=base.PROJECT_MEMBER_OR_ADMIN,
        description="Retry a failed restore that still holds its server: "
        "restore again from the same snapshot.",
        operations=[
            {
                "method": "POST",
                "path": "/v1/operations/{operation_id}/action (retry)",
            }
        ],
        scope_types=["project"],
    ),
    policy.DocumentedRuleDefault(
        name="snapmanager:operation:abandon",
        check_str=base.PROJECT_MEMBER_OR_ADMIN,
        description="Abandon a failed restore that still holds its server: "
        "Snapmanager unlocks the server and leaves it as the restore left "
        "it (stopped, if it got that far).",
        operations=[
            {
                "method": "POST",
                "path": "/v1/operations/{operation_id}/action (abandon)",
            }
        ],
        scope_types=["project"],
    ),
]


def list_rules():
    return rules
