"""A real OpenStack mini-cloud for Snapmanager's end-to-end tests.

Keystone, Placement, Glance and Nova (API, conductor, scheduler, compute
with the libvirt driver) from PyPI, on the test environment's MariaDB,
RabbitMQ, libvirt/QEMU and Ceph (tools/testenv). See README.md beside this
file; `python3 tools/minicloud up|down|status` is the command line.
"""

from .cloud import MiniCloud  # noqa: F401
from .cloud import MiniCloudError  # noqa: F401
from .cloud import default_dir  # noqa: F401
