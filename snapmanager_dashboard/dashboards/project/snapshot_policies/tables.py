from django.urls import reverse
from django.utils import html
from django.utils.translation import gettext_lazy as _
from horizon import tables

from snapmanager_dashboard import constants
from snapmanager_dashboard.dashboards.project.instance_snapshots import (
    tables as snapshot_tables,
)


class DefaultPolicy(tables.LinkAction):
    name = "default_policy"
    verbose_name = _("Project default policy")
    url = "horizon:project:snapshot_policies:default"
    classes = ("ajax-modal",)
    icon = "pencil"
    policy_rules = (constants.rule(constants.POLICY_SET),)


class ShowSnapshots(tables.LinkAction):
    name = "snapshots"
    verbose_name = _("Snapshots")

    def get_link_url(self, datum):
        return snapshot_tables.snapshots_tab_url(datum.id)


def _policy(row):
    if row.policy is None:
        return _("Off")
    if row.policy.uses_project_default:
        return _("Project default")
    return "; ".join(
        _describe(s) for s in row.policy.schedules if s.get("enabled", True)
    )


def _describe(schedule):
    text = "%s (%s)" % (schedule["spec"], schedule.get("timezone") or "UTC")
    keep = (schedule.get("retention") or {}).get("keep_count")
    if keep:
        text += ", " + _("keep %d") % keep
    return text


def _name_link(row):
    return reverse("horizon:project:instances:detail", args=[row.id])


def _late(row):
    """A warning mark on a server whose newest snapshot is older than
    its schedule allows, naming the late schedules."""
    if not row.late:
        return ""
    return html.format_html(
        '<span class="fa fa-exclamation-triangle text-warning"></span> {}',
        _("Late: %s") % ", ".join(s["spec"] for s in row.late),
    )


class ServerPoliciesTable(tables.DataTable):
    name = tables.WrappingColumn(
        "name", verbose_name=_("Server"), link=_name_link
    )
    policy = tables.Column(_policy, verbose_name=_("Policy"))
    newest = tables.Column(
        "newest",
        verbose_name=_("Newest good snapshot"),
        filters=(snapshot_tables.local_datetime,),
        empty_value=_("None"),
    )
    next_run = tables.Column(
        "next_run",
        verbose_name=_("Next run"),
        filters=(snapshot_tables.local_datetime,),
        empty_value="-",
    )
    late = tables.Column(
        _late,
        verbose_name=_("Freshness"),
        classes=("snapmanager-late",),
        empty_value="",
    )

    def get_object_display(self, row):
        return row.name

    class Meta:
        name = "server_policies"
        verbose_name = _("Snapshot policies")
        table_actions = (DefaultPolicy,)
        row_actions = (snapshot_tables.SnapshotPolicyAction, ShowSnapshots)
