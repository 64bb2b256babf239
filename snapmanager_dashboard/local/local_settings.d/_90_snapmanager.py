# Snapmanager's policy rules for Horizon's checks, under the scope
# 'snapmanager'. Horizon execs this file inside its settings module, so
# POLICY_FILES and DEFAULT_POLICY_FILES are its own.
#
# The defaults are read from the installed package, so they are always
# the ones the installed API enforces. An operator's overrides go in
# snapmanager_policy.yaml in POLICY_FILES_PATH (Horizon's conf/), a copy
# of the API's policy.yaml; snapmanager_dashboard/conf/ has an empty
# one to start from.
import os as _os

import snapmanager_dashboard as _snapmanager_dashboard

POLICY_FILES["snapmanager"] = "snapmanager_policy.yaml"  # noqa: F821
DEFAULT_POLICY_FILES["snapmanager"] = _os.path.join(  # noqa: F821
    _os.path.dirname(_snapmanager_dashboard.__file__),
    "conf",
    "default_policies",
    "snapmanager.yaml",
)
