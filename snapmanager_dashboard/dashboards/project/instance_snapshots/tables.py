"""The "Snapshot policy" action of the Instances table, and the table of
a server's snapshots.

The snapshots table is shown in the instance detail page's Snapshots tab
and on a page of its own (``.../snapshot_policies/<server>/snapshots/``).
The detail page is Horizon's ``TabView``, which handles neither a
table's POST nor its rows' refreshes, so the table always names its own
page as its URL: deletes are posted there, refreshing rows ask there,
and the page sends the user back to the tab afterwards.
"""

from django.template import defaultfilters as filters
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext_lazy
from horizon import messages
from horizon import tables
from horizon.utils import filters as horizon_filters

from snapmanager_dashboard import constants
from snapmanager_dashboard.api import snapmanager

TAB_GROUP = "instance_details"
TAB = "snapmanager_snapshots"


def snapshots_tab_url(server_id):
    """The instance detail page, on its Snapshots tab."""
    url = reverse("horizon:project:instances:detail", args=[server_id])
    return f"{url}?tab={TAB_GROUP}__{TAB}"


class ProjectTargetMixin:
    """Policy checks against the project that owns the datum (the
    server's ``tenant_id`` in Nova, ``project_id`` in Snapmanager), as
    the API checks them."""

    def get_policy_target(self, request, datum=None):
        project_id = None
        if datum is not None:
            project_id = getattr(datum, "project_id", None) or getattr(
                datum, "tenant_id", None
            )
        return {"project_id": project_id or request.user.project_id}


class SnapshotPolicyAction(ProjectTargetMixin, tables.LinkAction):
    """The Instances table's row action (and the detail page's)."""

    name = "snapmanager_policy"
    verbose_name = _("Snapshot policy")
    url = "horizon:project:snapshot_policies:policy"
    classes = ("ajax-modal",)
    icon = "calendar"
    policy_rules = (constants.rule(constants.POLICY_SET),)

    def get_link_url(self, datum):
        url = reverse(self.url, args=[datum.id])
        return f"{url}?next={self.table.request.path}"

    def allowed(self, request, datum=None):
        return snapmanager.is_enabled(request)


def _server_id(table):
    if "server_id" in table.kwargs:
        return table.kwargs["server_id"]
    return table.kwargs["instance"].id


class TakeSnapshotNow(ProjectTargetMixin, tables.LinkAction):
    name = "take_now"
    verbose_name = _("Take a snapshot now")
    url = "horizon:project:snapshot_policies:take_now"
    classes = ("ajax-modal",)
    icon = "camera"
    policy_rules = (constants.rule(constants.SNAPSHOT_CREATE),)

    def get_link_url(self, datum=None):
        return reverse(self.url, args=[_server_id(self.table)])


class RestoreSnapshot(ProjectTargetMixin, tables.LinkAction):
    name = "restore"
    verbose_name = _("Restore")
    url = "horizon:project:snapshot_policies:restore"
    classes = ("ajax-modal", "btn-danger")
    icon = "undo"
    policy_rules = (constants.rule(constants.SNAPSHOT_RESTORE),)

    def allowed(self, request, snapshot=None):
        return (
            snapshot is None or snapshot.status == constants.SNAPSHOT_AVAILABLE
        )


class DeleteSnapshot(ProjectTargetMixin, tables.DeleteAction):
    policy_rules = (constants.rule(constants.SNAPSHOT_DELETE),)

    @staticmethod
    def action_present(count):
        return ngettext_lazy("Delete Snapshot", "Delete Snapshots", count)

    @staticmethod
    def action_past(count):
        return ngettext_lazy(
            "Scheduled deletion of Snapshot",
            "Scheduled deletion of Snapshots",
            count,
        )

    def allowed(self, request, snapshot=None):
        return snapshot is None or snapshot.status in (
            constants.SNAPSHOT_AVAILABLE,
            constants.SNAPSHOT_ERROR,
        )

    def delete(self, request, obj_id):
        try:
            snapmanager.snapshot_delete(request, obj_id)
        except snapmanager.APIError as exc:
            # BatchAction reports "Unable to delete" without a reason;
            # the API's says why (a restore from it is running, ...).
            messages.error(request, str(exc))
            raise

    def get_success_url(self, request=None):
        return snapshots_tab_url(_server_id(self.table))


def schedule_specs(request, server_id):
    """Schedule id -> spec of the server's policy ({} without one)."""
    policy = snapmanager.policy_get(request, server_id)
    if policy is None:
        return {}
    return {s["id"]: s["spec"] for s in policy.schedules}


def server_snapshots(request, server_id):
    """The server's snapshots, newest first, each knowing the spec of
    the schedule that took it."""
    snapshots = snapmanager.snapshot_list(request, server_id=server_id)
    specs = schedule_specs(request, server_id)
    for snapshot in snapshots:
        snapshot.schedule_specs = specs
    return sorted(snapshots, key=lambda s: s.window_start, reverse=True)


class UpdateSnapshotRow(tables.Row):
    ajax = True

    def get_data(self, request, snapshot_id):
        snapshot = snapmanager.snapshot_get(request, snapshot_id)
        snapshot.schedule_specs = schedule_specs(request, snapshot.server_id)
        return snapshot


def _taken_by(snapshot):
    schedule_id = getattr(snapshot, "schedule_id", None)
    if not schedule_id:
        return _("On request")
    specs = getattr(snapshot, "schedule_specs", None) or {}
    return specs.get(schedule_id, _("A removed schedule"))


def _time(snapshot):
    return horizon_filters.parse_isotime(snapshot.window_start)


def local_datetime(value):
    """An aware time in the user's timezone (Horizon activates it per
    request), to the minute, with the zone's name."""
    if not value:
        return value
    return filters.date(timezone.localtime(value), "Y-m-d H:i T")


STATUS_DISPLAY = (
    (constants.SNAPSHOT_CREATING, _("Creating")),
    (constants.SNAPSHOT_AVAILABLE, _("Available")),
    (constants.SNAPSHOT_ERROR, _("Error")),
    (constants.SNAPSHOT_DELETING, _("Deleting")),
    (constants.SNAPSHOT_DELETED, _("Deleted")),
    (constants.SNAPSHOT_UNAVAILABLE, _("Unavailable")),
)
STATUS_CHOICES = (
    (constants.SNAPSHOT_CREATING, None),
    (constants.SNAPSHOT_DELETING, None),
    (constants.SNAPSHOT_AVAILABLE, True),
    (constants.SNAPSHOT_DELETED, True),
    (constants.SNAPSHOT_ERROR, False),
    # Settled until its host is back: the row stops refreshing.
    (constants.SNAPSHOT_UNAVAILABLE, False),
)


class SnapshotsTable(tables.DataTable):
    time = tables.Column(
        _time,
        verbose_name=_("Time"),
        filters=(local_datetime,),
        attrs={"data-type": "timestamp"},
    )
    status = tables.Column(
        "status",
        verbose_name=_("Status"),
        status=True,
        status_choices=STATUS_CHOICES,
        display_choices=STATUS_DISPLAY,
    )
    size = tables.Column(
        "size_bytes",
        verbose_name=_("Size"),
        filters=(filters.filesizeformat,),
    )
    taken_by = tables.Column(_taken_by, verbose_name=_("Schedule"))
    error = tables.Column(
        # Why it failed, or why it is unavailable.
        lambda s: s.error or s._apidict.get("unavailable_reason") or "",
        verbose_name=_("Error"),
        truncate=80,
    )

    def get_full_url(self):
        return reverse(
            "horizon:project:snapshot_policies:snapshots",
            args=[_server_id(self)],
        )

    class Meta:
        name = "snapmanager_snapshots"
        verbose_name = _("Snapshots")
        status_columns = ("status",)
        row_class = UpdateSnapshotRow
        table_actions = (TakeSnapshotNow, DeleteSnapshot)
        row_actions = (RestoreSnapshot, DeleteSnapshot)
