import horizon
from django.utils.translation import gettext_lazy as _

from snapmanager_dashboard import constants


class SnapshotPolicies(horizon.Panel):
    name = _("Snapshot Policies")
    slug = "snapshot_policies"
    # Hidden, with every URL below it, when the user's catalog has no
    # Snapmanager endpoint (openstack_auth grants this permission per
    # service type in the catalog).
    permissions = ("openstack.services.%s" % constants.SERVICE_TYPE,)
    policy_rules = (constants.rule(constants.POLICY_LIST),)
