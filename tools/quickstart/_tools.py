"""The mini-cloud's package, as the rest of the project loads it.

tools/ is not a package: tools/minicloud is loaded by path, once per
process, under the name the test fixtures give it too
(tests/fixtures/minicloud.py), so that a pytest session holds one copy of
it whichever loads it first.
"""

import importlib.util
import pathlib
import sys

MINICLOUD_DIR = pathlib.Path(__file__).resolve().parents[1] / "minicloud"
MODULE_NAME = "snapmanager_minicloud"


def _load_minicloud():
    module = sys.modules.get(MODULE_NAME)
    if module is None:
        spec = importlib.util.spec_from_file_location(
            MODULE_NAME,
            MINICLOUD_DIR / "__init__.py",
            submodule_search_locations=[str(MINICLOUD_DIR)],
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[MODULE_NAME] = module
        spec.loader.exec_module(module)
    return module


minicloud = _load_minicloud()
