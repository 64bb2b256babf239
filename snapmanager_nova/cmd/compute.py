"""snapmanager-compute: the compute agent (libvirt and Ceph RBD operations)."""

import sys

from snapmanager_nova import service


def main(argv=None):
    return service.not_yet_available(
        "snapmanager-compute",
        "compute agent (libvirt and Ceph RBD operations)",
        argv,
    )


if __name__ == "__main__":
    sys.exit(main())
