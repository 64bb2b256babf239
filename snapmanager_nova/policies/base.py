"""Base rules that the per-resource policies are written in terms of.

Secure-RBAC defaults as Nova has them since 2023.1: a project's reader may
read, its member may change, and only an admin reaches across projects.
Every resource rule also checks ``project_id:%(project_id)s`` so a token of
one project never matches another project's target.
"""

from oslo_policy import policy

ADMIN = "rule:context_is_admin"
PROJECT_READER_OR_ADMIN = "rule:project_reader_or_admin"
PROJECT_MEMBER_OR_ADMIN = "rule:project_member_or_admin"

rules = [
    policy.RuleDefault(
        "context_is_admin",
        "role:admin",
        description="Decides what is admin-only (for example listing every "
        "project's policies with all_projects).",
    ),
    policy.RuleDefault(
        "project_reader_or_admin",
        "(role:reader and project_id:%(project_id)s) or rule:context_is_admin",
        description="A reader of the owning project, or an admin.",
    ),
    policy.RuleDefault(
        "project_member_or_admin",
        "(role:member and project_id:%(project_id)s) or rule:context_is_admin",
        description="A member of the owning project, or an admin.",
    ),
]


def list_rules():
    return rules
