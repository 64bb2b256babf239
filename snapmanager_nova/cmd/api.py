"""snapmanager-api: the REST API service."""

import sys

from snapmanager_nova import service


def main(argv=None):
    return service.not_yet_available(
        "snapmanager-api", "REST API service", argv
    )


if __name__ == "__main__":
    sys.exit(main())
