"""Default policies: every rule documented, secure-RBAC project scoping."""

import pytest
from oslo_config import cfg
from oslo_policy import policy as oslo_policy

from snapmanager_nova import policies


@pytest.fixture
def enforcer():
    conf = cfg.ConfigOpts()
    conf([])
    enforcer = oslo_policy.Enforcer(conf)
    enforcer.register_defaults(policies.list_rules())
    enforcer.load_rules()
    return enforcer


def creds(project, *roles):
    return {"project_id": project, "roles": list(roles)}


def test_rule_names_are_unique():
    names = [rule.name for rule in policies.list_rules()]
    assert len(names) == len(set(names))


def test_api_rules_are_documented_and_project_scoped():
    api_rules = [
        rule
        for rule in policies.list_rules()
        if rule.name.startswith("snapmanager:")
    ]
    assert api_rules
    for rule in api_rules:
        assert isinstance(rule, oslo_policy.DocumentedRuleDefault)
        assert rule.description and rule.operations
        assert rule.scope_types == ["project"]


READ = [
    "snapmanager:snapshot:list",
    "snapmanager:snapshot:show",
    "snapmanager:snapshot_policy:show",
    "snapmanager:operation:show",
]
WRITE = [
    "snapmanager:snapshot:create",
    "snapmanager:snapshot:delete",
    "snapmanager:snapshot:restore",
    "snapmanager:snapshot_policy:set",
    "snapmanager:snapshot_policy:unset",
]


@pytest.mark.parametrize("rule", READ + WRITE)
@pytest.mark.parametrize(
    "who,allowed_read,allowed_write",
    [
        (creds("demo", "reader"), True, False),
        (creds("demo", "reader", "member"), True, True),
        (creds("other", "reader", "member"), False, False),
        (creds("other", "reader", "member", "admin"), True, True),
        (creds("demo"), False, False),
    ],
)
def test_rbac_matrix(enforcer, rule, who, allowed_read, allowed_write):
    target = {"project_id": "demo"}
    expected = allowed_read if rule in READ else allowed_write
    assert enforcer.enforce(rule, target, who) is expected


def test_all_projects_listing_is_admin_only(enforcer):
    rule = "snapmanager:snapshot_policy:list:all_projects"
    target = {"project_id": "demo"}
    assert not enforcer.enforce(rule, target, creds("demo", "member"))
    assert enforcer.enforce(rule, target, creds("demo", "admin"))
