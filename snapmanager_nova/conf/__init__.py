"""Snapmanager's configuration options, one module per option group.

Every process imports ``CONF`` from here; ``register_opts`` runs once at
import so that any module may read an option without caring about order.
"""

from oslo_config import cfg

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

CONF = cfg.CONF

# Every option group's module, registered below and listed by opts.py
# for the sample-config generator.
MODULES = (
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

for _module in MODULES:
    _module.register_opts(CONF)
