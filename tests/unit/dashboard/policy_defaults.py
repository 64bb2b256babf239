"""Snapmanager's policy defaults in the form Horizon reads them
(``DEFAULT_POLICY_FILES``: the YAML list that Horizon's
``dump_default_policies`` command writes for the services it ships).

``python -m tests.unit.dashboard.policy_defaults`` rewrites
snapmanager_dashboard/conf/default_policies/snapmanager.yaml;
test_constants.py fails when the file and the policies differ.
"""

import pathlib
import re

import yaml

from snapmanager_dashboard import constants
from snapmanager_nova import policies

PATH = (
    pathlib.Path(__file__).resolve().parents[3]
    / "snapmanager_dashboard"
    / "conf"
    / "default_policies"
    / "snapmanager.yaml"
)


def _used_rules():
    """The rules the dashboard checks, and the base rules they are
    written in terms of (``rule:...``), transitively."""
    by_name = {rule.name: rule for rule in policies.list_rules()}
    wanted = list(constants.RULES)
    used = set()
    while wanted:
        name = wanted.pop()
        if name in used:
            continue
        used.add(name)
        wanted += re.findall(r"rule:([\w:.-]+)", by_name[name].check_str)
    return [rule for rule in policies.list_rules() if rule.name in used]


def as_horizon_reads_them():
    """Only the rules the dashboard uses: a rule the API adds for a
    request the dashboard never makes changes nothing here."""
    return [
        {
            "name": rule.name,
            "check_str": rule.check_str,
            "description": rule.description,
            "operations": list(getattr(rule, "operations", [])),
            "scope_types": rule.scope_types,
        }
        for rule in _used_rules()
    ]


def render():
    return (
        "# Generated from snapmanager_nova/policies by\n"
        "# `python -m tests.unit.dashboard.policy_defaults`; do not edit.\n"
        + yaml.safe_dump(as_horizon_reads_them(), sort_keys=True)
    )


if __name__ == "__main__":
    PATH.write_text(render())
