"""Policies of the freshness check (servers whose snapshots are late)."""

from oslo_policy import policy

from snapmanager_nova.policies import base

rules = [
    policy.DocumentedRuleDefault(
        name="snapmanager:stale_server:list",
        check_str=base.ADMIN,
        description="List the servers, of every project or of one, whose "
        "newest available scheduled snapshot is older than their "
        "schedule allows (an operator's freshness check).",
        operations=[{"method": "GET", "path": "/v1/stale-servers"}],
        scope_types=["project"],
    ),
]


def list_rules():
    return rules
