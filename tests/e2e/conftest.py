"""The two-host matrix: a fast subset by default, all of it on request.

tests/e2e/test_two_hosts_*.py run every Nova operation of
tests/e2e/two_hosts.py in each disk mode; most of them carry the
`two_hosts_full` marker and run only with SNAPMANAGER_E2E_FULL_MATRIX=1
(about 1.5 minutes each on a 2-core machine). Without it, the fast subset
runs: one move per disk mode and the evacuation.
"""

import os

FULL_MATRIX = "SNAPMANAGER_E2E_FULL_MATRIX"
MARKER = "two_hosts_full"


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "%s: part of the two-host matrix that runs only with %s=1"
        % (MARKER, FULL_MATRIX),
    )


def pytest_collection_modifyitems(config, items):
    if os.environ.get(FULL_MATRIX, "") not in ("", "0"):
        return
    kept = [item for item in items if item.get_closest_marker(MARKER) is None]
    if len(kept) < len(items):
        config.hook.pytest_deselected(
            items=[item for item in items if item not in kept]
        )
        items[:] = kept
