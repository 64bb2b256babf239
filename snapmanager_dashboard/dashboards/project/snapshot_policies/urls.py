from django.urls import re_path

from snapmanager_dashboard.dashboards.project.snapshot_policies import views

UUID = r"(?P<%s>[^/]+)"

urlpatterns = [
    re_path(r"^$", views.IndexView.as_view(), name="index"),
    re_path(r"^default/$", views.DefaultPolicyView.as_view(), name="default"),
    re_path(
        r"^servers/%s/policy/$" % (UUID % "server_id"),
        views.PolicyView.as_view(),
        name="policy",
    ),
    re_path(
        r"^servers/%s/snapshots/$" % (UUID % "server_id"),
        views.SnapshotsView.as_view(),
        name="snapshots",
    ),
    re_path(
        r"^servers/%s/take_now/$" % (UUID % "server_id"),
        views.TakeSnapshotView.as_view(),
        name="take_now",
    ),
    re_path(
        r"^snapshots/%s/restore/$" % (UUID % "snapshot_id"),
        views.RestoreView.as_view(),
        name="restore",
    ),
    re_path(
        r"^operations/%s/$" % (UUID % "operation_id"),
        views.OperationView.as_view(),
        name="operation",
    ),
    re_path(
        r"^operations/%s/(?P<action>retry|abandon)/$"
        % (UUID % "operation_id"),
        views.OperationActionView.as_view(),
        name="operation_action",
    ),
]
