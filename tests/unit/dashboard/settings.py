"""Horizon's own test settings with Snapmanager's plugin enabled, as
manila-ui's tests do it: Horizon's enabled files and ours, ours last."""

import pathlib as _pathlib

import openstack_dashboard.enabled
from openstack_dashboard.test.settings import *  # noqa: F403
from openstack_dashboard.utils import settings as _settings_utils

import snapmanager_dashboard.local.enabled

INSTALLED_APPS = list(INSTALLED_APPS)  # noqa: F405
# Horizon's settings already applied its own enabled files; apply both
# again so ours come after them (they add to the project dashboard).
HORIZON_CONFIG.pop("dashboards", None)  # noqa: F405
HORIZON_CONFIG.pop("default_dashboard", None)  # noqa: F405
_settings_utils.update_dashboards(
    [openstack_dashboard.enabled, snapmanager_dashboard.local.enabled],
    HORIZON_CONFIG,  # noqa: F405
    INSTALLED_APPS,
)
# update_dashboards puts every plugin's apps first; Horizon's were
# there already.
INSTALLED_APPS = list(dict.fromkeys(INSTALLED_APPS))

# The plugin's settings snippet (local/local_settings.d/), as Horizon
# execs it; the overrides file from the source tree.
_snippet = (
    _pathlib.Path(snapmanager_dashboard.local.enabled.__file__).parent.parent
    / "local_settings.d"
    / "_90_snapmanager.py"
)
exec(_snippet.read_text())
POLICY_FILES["snapmanager"] = str(  # noqa: F405
    _pathlib.Path(snapmanager_dashboard.local.enabled.__file__).parents[2]
    / "conf"
    / "snapmanager_policy.yaml"
)
