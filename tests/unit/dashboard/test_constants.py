"""The dashboard's copies of the API's names stay equal to the API's.

snapmanager_dashboard/constants.py spells out the policy rules, statuses
and states instead of importing the API's modules; Horizon's default
policy file for Snapmanager is generated from the API's rules. These
tests fail when either drifts.
"""

import yaml

from snapmanager_dashboard import constants
from snapmanager_nova import policies
from snapmanager_nova.db import models
from tests.unit.dashboard import policy_defaults


def test_rules_are_the_apis():
    api_rules = {rule.name for rule in policies.list_rules()}
    assert set(constants.RULES) <= api_rules
    assert len(set(constants.RULES)) == len(constants.RULES)


def test_statuses_and_states_are_the_apis():
    assert constants.SNAPSHOT_STATUSES == models.SNAPSHOT_STATUSES
    assert constants.SNAPSHOT_UNAVAILABLE == models.SNAPSHOT_UNAVAILABLE
    assert constants.OPERATION_STATES == models.OPERATION_STATES
    assert set(constants.SNAPSHOT_CHANGING) <= set(models.SNAPSHOT_STATUSES)
    assert set(constants.OPERATION_FINISHED) <= set(models.OPERATION_STATES)
    assert constants.OPERATION_HOLDING_TYPES == models.HOLDING_TYPES
    assert set(constants.OPERATION_HOLDING_TYPES) <= set(
        models.OPERATION_TYPES
    )


def test_horizon_default_policy_file_is_the_apis():
    shipped = yaml.safe_load(policy_defaults.PATH.read_text())
    assert shipped == policy_defaults.as_horizon_reads_them(), (
        "run `python -m tests.unit.dashboard.policy_defaults`"
    )


def test_horizon_reads_every_default():
    """The file loads the way openstack_auth.policy loads it: every rule
    the dashboard checks becomes an oslo.policy RuleDefault with the
    API's check string."""
    from openstack_auth import policy as horizon_policy

    shipped = yaml.safe_load(policy_defaults.PATH.read_text())
    defaults = {
        p["name"]: horizon_policy._convert_to_ruledefault(p) for p in shipped
    }
    api_rules = {rule.name: rule for rule in policies.list_rules()}
    for name in constants.RULES:
        assert defaults[name].check_str == api_rules[name].check_str
