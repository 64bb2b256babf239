"""Entry point for oslo-config-generator (namespace ``snapmanager``)."""

from snapmanager_nova.conf import api
from snapmanager_nova.conf import compute
from snapmanager_nova.conf import conductor
from snapmanager_nova.conf import database
from snapmanager_nova.conf import default
from snapmanager_nova.conf import freshness
from snapmanager_nova.conf import notifications
from snapmanager_nova.conf import nova
from snapmanager_nova.conf import quota
from snapmanager_nova.conf import rbd

_MODULES = (
    default,
    api,
    compute,
    conductor,
    database,
    freshness,
    nova,
    notifications,
    quota,
    rbd,
)


def list_opts():
    """Return [(group, [opts])] sorted by group name for the generator."""
    groups = {}
    for module in _MODULES:
        for group, opts in module.list_opts().items():
            name = getattr(group, "name", group)
            groups.setdefault(name, (group, []))[1].extend(opts)
    return [groups[name] for name in sorted(groups)]
