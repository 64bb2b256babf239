"""Default API policies, one module per resource.

``list_rules`` is the ``oslo.policy.policies`` entry point that
oslopolicy-sample-generator and oslopolicy-checker read.
"""

import itertools

from snapmanager_nova.policies import base
from snapmanager_nova.policies import error_detail
from snapmanager_nova.policies import operation
from snapmanager_nova.policies import quota_set
from snapmanager_nova.policies import snapshot
from snapmanager_nova.policies import snapshot_policy
from snapmanager_nova.policies import stale_server


def list_rules():
    return list(
        itertools.chain(
            base.list_rules(),
            error_detail.list_rules(),
            snapshot_policy.list_rules(),
            snapshot.list_rules(),
            operation.list_rules(),
            quota_set.list_rules(),
            stale_server.list_rules(),
        )
    )
