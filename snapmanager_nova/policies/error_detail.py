"""Who sees the full text of a failure.

A snapshot's or operation's ``error`` is what an agent, libvirt, Ceph or
Nova said: host names, paths, library output. A tenant is shown a short
message of what happened instead (api/views.py); whoever this rule
allows sees the full text, as operators do in the logs.
"""

from oslo_policy import policy

from snapmanager_nova.policies import base

SHOW = "snapmanager:error_detail:show"

rules = [
    policy.DocumentedRuleDefault(
        name=SHOW,
        check_str=base.ADMIN,
        description="See the full text of a snapshot's or an "
        "operation's error (agent and library output, host names, "
        "paths); others see a short message of what happened.",
        operations=[
            {"method": "GET", "path": "/v1/snapshots/{snapshot_id}"},
            {"method": "GET", "path": "/v1/snapshots"},
            {"method": "GET", "path": "/v1/servers/{server_id}/snapshots"},
            {"method": "GET", "path": "/v1/operations/{operation_id}"},
        ],
        scope_types=["project"],
    ),
]


def list_rules():
    return rules
