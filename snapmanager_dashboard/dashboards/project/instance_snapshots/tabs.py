"""The Snapshots tab of the instance detail page (Horizon's EXTRA_TABS,
set in local/enabled/)."""

from django.utils.translation import gettext_lazy as _
from horizon import messages
from horizon import tabs
from horizon.utils import settings as settings_utils

from snapmanager_dashboard import constants
from snapmanager_dashboard.api import snapmanager
from snapmanager_dashboard.dashboards.project.instance_snapshots import (
    tables as snapshot_tables,
)


class SnapshotsTab(tabs.TableTab):
    name = _("Snapshots")
    slug = snapshot_tables.TAB
    table_classes = (snapshot_tables.SnapshotsTable,)
    template_name = "horizon/common/_detail_table.html"
    # Loaded when opened, not with the page: the detail page must not
    # wait for (or fail with) Snapmanager's API.
    preload = False
    policy_rules = (constants.rule(constants.SNAPSHOT_LIST),)

    def allowed(self, request):
        if not snapmanager.is_enabled(request):
            return False
        policy_check = settings_utils.import_setting("POLICY_CHECK_FUNCTION")
        if not policy_check:
            return True
        # Against the server's project, as the API checks it (Tab's own
        # check passes no target).
        instance = self.tab_group.kwargs["instance"]
        target = {"project_id": getattr(instance, "tenant_id", None)}
        return policy_check(self.policy_rules, request, target)

    def get_snapmanager_snapshots_data(self):
        instance = self.tab_group.kwargs["instance"]
        try:
            return snapshot_tables.server_snapshots(self.request, instance.id)
        except snapmanager.APIError as exc:
            messages.error(
                self.request, _("Unable to list the snapshots: %s") % exc
            )
            return []
