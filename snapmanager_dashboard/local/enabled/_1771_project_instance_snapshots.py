# The Instances pages: a "Snapshot policy" row action (added by the app's
# ready(), snapmanager_dashboard/apps.py) and a "Snapshots" tab on the
# instance detail page. Both are hidden when the catalog has no
# 'snapmanager' endpoint. Horizon reads only files that name a DASHBOARD,
# PANEL, PANEL_GROUP or FEATURE: this one adds no panel, so it names a
# feature.
FEATURE = "snapmanager_instance_snapshots"
ADD_INSTALLED_APPS = ["snapmanager_dashboard"]
EXTRA_TABS = {
    "openstack_dashboard.dashboards.project.instances.tabs."
    "InstanceDetailTabs": (
        (
            50,
            "snapmanager_dashboard.dashboards.project.instance_snapshots."
            "tabs.SnapshotsTab",
        ),
    ),
}
