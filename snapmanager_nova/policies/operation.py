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
]


def list_rules():
    return rules
