"""snapmanager-conductor: schedule clock, retention, restore."""

import sys

from snapmanager_nova import service


def main(argv=None):
    return service.not_yet_available(
        "snapmanager-conductor",
        "conductor (schedule clock, retention, restore orchestration)",
        argv,
    )


if __name__ == "__main__":
    sys.exit(main())
