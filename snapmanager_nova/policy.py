"""The oslo.policy enforcer of the API service."""

from oslo_policy import policy

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import policies

CONF = sm_conf.CONF

_ENFORCER = None


def get_enforcer():
    """Return the process's enforcer, creating it on first use.

    Also the ``oslo.policy.enforcer`` entry point, so oslopolicy-checker
    and oslopolicy-policy-generator see exactly what the API enforces.
    """
    global _ENFORCER
    if _ENFORCER is None:
        _ENFORCER = policy.Enforcer(CONF)
        _ENFORCER.register_defaults(policies.list_rules())
    return _ENFORCER


def reset():
    """Forget the enforcer (tests and SIGHUP reload create a new one)."""
    global _ENFORCER
    if _ENFORCER is not None:
        _ENFORCER.clear()
    _ENFORCER = None
