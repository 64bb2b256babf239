"""Snapmanager on the mini-cloud: the quickstart and the end-to-end stack.

`python3 tools/quickstart up|status|down` brings up the mini-cloud
(tools/minicloud), registers Snapmanager in its Keystone, configures and
starts snapmanager-api, -conductor and -compute against it, and makes a
demo server. The test fixtures (tests/fixtures/snapmanager_cloud.py) run
the same `Stack`. See README.md beside this file.
"""

from .stack import API_URL  # noqa: F401
from .stack import Stack  # noqa: F401
from .stack import StackError  # noqa: F401
