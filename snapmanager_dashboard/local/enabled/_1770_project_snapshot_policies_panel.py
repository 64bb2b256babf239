# Project > Compute > Snapshot Policies: every server's policy and
# freshness, and the project's default policy. Hidden when the catalog
# has no 'snapmanager' endpoint.
PANEL = "snapshot_policies"
PANEL_DASHBOARD = "project"
PANEL_GROUP = "compute"
ADD_PANEL = (
    "snapmanager_dashboard.dashboards.project.snapshot_policies.panel."
    "SnapshotPolicies"
)
