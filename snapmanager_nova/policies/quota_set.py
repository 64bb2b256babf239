"""Policies of quota sets: a project's limits and what it uses.

As Nova's ``os-quota-sets``: a project's readers see their own, only an
admin changes any.
"""

from oslo_policy import policy

from snapmanager_nova.policies import base

PATH = "/v1/quota-sets/{project_id}"

rules = [
    policy.DocumentedRuleDefault(
        name="snapmanager:quota_set:show",
        check_str=base.PROJECT_READER_OR_ADMIN,
        description="Show a project's quotas, and what it uses of them.",
        operations=[{"method": "GET", "path": PATH}],
        scope_types=["project"],
    ),
    policy.DocumentedRuleDefault(
        name="snapmanager:quota_set:update",
        check_str=base.ADMIN,
        description="Set a project's quotas, overriding the [quota] defaults.",
        operations=[{"method": "PUT", "path": PATH}],
        scope_types=["project"],
    ),
    policy.DocumentedRuleDefault(
        name="snapmanager:quota_set:delete",
        check_str=base.ADMIN,
        description="Drop a project's quotas: the [quota] defaults apply "
        "again.",
        operations=[{"method": "DELETE", "path": PATH}],
        scope_types=["project"],
    ),
]


def list_rules():
    return rules
