import dataclasses
import datetime

from django import http
from django.urls import reverse
from django.urls import reverse_lazy
from django.utils import http as http_utils
from django.utils.translation import gettext_lazy as _
from django.views import generic
from horizon import exceptions
from horizon import forms
from horizon import messages
from horizon import tables
from horizon import views
from horizon.utils import filters as horizon_filters
from horizon.utils import memoized
from horizon.utils import settings as settings_utils
from novaclient import exceptions as nova_exceptions
from openstack_dashboard import api

from snapmanager_dashboard import constants
from snapmanager_dashboard.api import snapmanager
from snapmanager_dashboard.dashboards.project.instance_snapshots import (
    tables as snapshot_tables,
)
from snapmanager_dashboard.dashboards.project.snapshot_policies import (
    forms as policy_forms,
)
from snapmanager_dashboard.dashboards.project.snapshot_policies import (
    schedules,
)
from snapmanager_dashboard.dashboards.project.snapshot_policies import (
    tables as policy_tables,
)

INDEX_URL = reverse_lazy("horizon:project:snapshot_policies:index")


@dataclasses.dataclass
class ServerRow:
    """One server of the panel's table."""

    id: str
    name: str
    tenant_id: str
    policy: object
    newest: datetime.datetime | None
    next_run: datetime.datetime | None
    late: list


def _server(request, server_id):
    """Nova's server, as the user sees it; a server Nova does not show
    the user (another project's) is Django's 404, like a missing page."""
    try:
        return api.nova.server_get(request, server_id)
    except nova_exceptions.NotFound:
        raise http.Http404 from None
    except Exception:
        exceptions.handle(
            request, _("Unable to retrieve the server."), redirect=INDEX_URL
        )


def _found(call, *args):
    """``call(request, ...)``'s answer; the API's 404 (another project's
    or a missing snapshot or operation) is Django's 404."""
    try:
        return call(*args)
    except snapmanager.APIError as exc:
        if exc.code == 404:
            raise http.Http404 from None
        raise


class IndexView(tables.DataTableView):
    table_class = policy_tables.ServerPoliciesTable
    template_name = "project/snapshot_policies/index.html"
    page_title = _("Snapshot Policies")

    def get_data(self):
        request = self.request
        try:
            servers, _more = api.nova.server_list(request)
        except Exception:
            servers = []
            exceptions.handle(request, _("Unable to retrieve servers."))
        try:
            policies = {
                p.server_id: p for p in snapmanager.policy_list(request)
            }
            snapshots = snapmanager.snapshot_list(
                request, status=constants.SNAPSHOT_AVAILABLE
            )
            self.default_policy = snapmanager.default_policy_get(request)
        except snapmanager.APIError as exc:
            messages.error(
                request, _("Unable to retrieve snapshot policies: %s") % exc
            )
            policies, snapshots, self.default_policy = {}, [], None
        by_server = {}
        for snapshot in snapshots:
            by_server.setdefault(snapshot.server_id, []).append(snapshot)
        now = datetime.datetime.now(datetime.UTC)
        rows = []
        for server in sorted(servers, key=lambda s: s.name or s.id):
            policy = policies.get(server.id)
            taken = [s.to_dict() for s in by_server.get(server.id, [])]
            newest = schedules.newest_good(taken)
            own = schedules.effective(policy, self.default_policy)
            rows.append(
                ServerRow(
                    id=server.id,
                    name=server.name,
                    tenant_id=server.tenant_id,
                    policy=policy,
                    newest=newest
                    and horizon_filters.parse_isotime(newest["window_start"]),
                    next_run=schedules.next_run(own),
                    late=schedules.late_schedules(own, taken, now),
                )
            )
        return rows

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["default_policy"] = getattr(self, "default_policy", None)
        return context


def _safe_next(request, default):
    """The ``next`` URL the opening page asked to return to, if it is
    one of this site's."""
    target = request.GET.get("next") or request.POST.get("next")
    if target and http_utils.url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}
    ):
        return target
    return default


class _ModalFormView(forms.ModalFormView):
    def get_cancel_url(self):
        return self.get_success_url()


class _ServerMixin:
    """A view of one server, ``server_id`` in its URL."""

    @memoized.memoized_method
    def get_server(self):
        return _server(self.request, self.kwargs["server_id"])


class PolicyView(_ServerMixin, _ModalFormView):
    form_class = policy_forms.PolicyForm
    template_name = "project/snapshot_policies/policy.html"
    modal_id = "snapmanager_policy_modal"
    modal_header = _("Snapshot policy")
    submit_label = _("Save")
    page_title = _("Snapshot policy")

    @memoized.memoized_method
    def get_policy(self):
        self.get_server()
        try:
            return snapmanager.policy_get(
                self.request, self.kwargs["server_id"]
            )
        except snapmanager.APIError as exc:
            messages.error(
                self.request, _("Unable to read the policy: %s") % exc
            )
            return None

    def get_initial(self):
        # Ticked also when snapshots are off: opening this form is how
        # one switches them on; the text beside it says they are off.
        initial = {"server_id": self.kwargs["server_id"], "snapshots_on": True}
        policy = self.get_policy()
        if policy is None:
            return initial
        initial["keep_after_delete"] = policy.keep_after_delete
        if policy.schedules:
            initial.update(schedules.fields_from_schedule(policy.schedules[0]))
        return initial

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        policy = self.get_policy()
        context["server"] = self.get_server()
        context["policy"] = policy
        context["next_run"] = policy and schedules.next_run(policy.schedules)
        context["submit_url"] = self.request.get_full_path()
        return context

    def get_success_url(self):
        return _safe_next(self.request, str(INDEX_URL))


class DefaultPolicyView(_ModalFormView):
    form_class = policy_forms.DefaultPolicyForm
    template_name = "project/snapshot_policies/default.html"
    modal_id = "snapmanager_default_policy_modal"
    modal_header = _("Project default policy")
    submit_label = _("Save")
    submit_url = reverse_lazy("horizon:project:snapshot_policies:default")
    success_url = INDEX_URL
    page_title = _("Project default policy")

    @memoized.memoized_method
    def get_policy(self):
        try:
            return snapmanager.default_policy_get(self.request)
        except snapmanager.APIError as exc:
            messages.error(
                self.request, _("Unable to read the default: %s") % exc
            )
            return None

    def get_initial(self):
        policy = self.get_policy()
        if policy is None or not policy.schedules:
            return {}
        return schedules.fields_from_schedule(policy.schedules[0])

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["policy"] = self.get_policy()
        return context


class SnapshotsView(_ServerMixin, tables.DataTableView):
    """A server's snapshots; the Snapshots tab's table posts here."""

    table_class = snapshot_tables.SnapshotsTable
    template_name = "project/snapshot_policies/snapshots.html"
    page_title = _("Snapshots of {{ server.name }}")

    def get_data(self):
        self.get_server()
        try:
            return snapshot_tables.server_snapshots(
                self.request, self.kwargs["server_id"]
            )
        except snapmanager.APIError as exc:
            messages.error(
                self.request, _("Unable to list the snapshots: %s") % exc
            )
            return []

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["server"] = self.get_server()
        return context


class TakeSnapshotView(_ServerMixin, _ModalFormView):
    form_class = policy_forms.TakeSnapshotForm
    template_name = "project/snapshot_policies/take_now.html"
    modal_id = "snapmanager_take_now_modal"
    modal_header = _("Take a snapshot now")
    submit_label = _("Take snapshot")
    page_title = _("Take a snapshot now")

    def get_initial(self):
        return {"server_id": self.kwargs["server_id"]}

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["server"] = self.get_server()
        context["submit_url"] = self.request.get_full_path()
        return context

    def get_success_url(self):
        return snapshot_tables.snapshots_tab_url(self.kwargs["server_id"])


class RestoreView(_ModalFormView):
    form_class = policy_forms.RestoreForm
    template_name = "project/snapshot_policies/restore.html"
    modal_id = "snapmanager_restore_modal"
    modal_header = _("Restore the server from this snapshot")
    submit_label = _("Restore")
    page_title = _("Restore")

    @memoized.memoized_method
    def get_snapshot(self):
        return _found(
            snapmanager.snapshot_get, self.request, self.kwargs["snapshot_id"]
        )

    def get_initial(self):
        return {"snapshot_id": self.get_snapshot().id}

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        snapshot = self.get_snapshot()
        context["snapshot"] = snapshot
        context["taken_at"] = horizon_filters.parse_isotime(
            snapshot.window_start
        )
        context["server"] = _server(self.request, snapshot.server_id)
        context["submit_url"] = reverse(
            "horizon:project:snapshot_policies:restore",
            args=[snapshot.id],
        )
        return context

    def get_success_url(self):
        return snapshot_tables.snapshots_tab_url(self.get_snapshot().server_id)

    def get_success_url_from_handled(self, operation):
        # Straight to the restore's progress.
        return reverse(
            "horizon:project:snapshot_policies:operation",
            args=[operation.id],
        )


class OperationView(views.HorizonTemplateView):
    """A restore's (or any operation's) progress until it ends."""

    template_name = "project/snapshot_policies/operation.html"
    page_title = "{{ operation_title }}"
    titles = {
        "restore": _("Restore of %s"),
        "abandon": _("Giving back %s after a failed restore"),
        "snapshot": _("Snapshot of %s"),
        "delete": _("Deleting a snapshot of %s"),
    }
    # Seconds between two reloads of an unfinished operation's page.
    refresh = 3

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        operation = _found(
            snapmanager.operation_get,
            self.request,
            self.kwargs["operation_id"],
        )
        context["operation"] = operation
        try:
            server = api.nova.server_get(self.request, operation.server_id)
            name = server.name
        except Exception:
            # Deleted since, or Nova is down: the id says enough here.
            name = operation.server_id
        context["operation_title"] = (
            self.titles.get(operation.type, _("Operation on %s")) % name
        )
        context["finished"] = operation.state in constants.OPERATION_FINISHED
        context["failed"] = operation.state == constants.OPERATION_FAILED
        context["refresh"] = self.refresh
        context["server_url"] = snapshot_tables.snapshots_tab_url(
            operation.server_id
        )
        # A failed restore still holds its server (locked, perhaps
        # stopped): the ways out, as the API's rules allow them.
        holds = (
            context["failed"]
            and operation.type in constants.OPERATION_HOLDING_TYPES
        )
        target = {"project_id": operation.project_id}
        context["can_retry"] = (
            holds
            and operation.type == constants.OPERATION_RESTORE
            and _allowed(self.request, constants.OPERATION_RETRY, target)
        )
        context["can_abandon"] = holds and _allowed(
            self.request, constants.OPERATION_ABANDON, target
        )
        return context


def _allowed(request, rule, target):
    policy_check = settings_utils.import_setting("POLICY_CHECK_FUNCTION")
    if not policy_check:
        return True
    return policy_check((constants.rule(rule),), request, target)


class OperationActionView(generic.View):
    """POST: retry or abandon a failed restore, then follow the operation
    that takes over (or, refused, stay on this one with the API's
    reason)."""

    actions = {
        "retry": (
            "operation_retry",
            _("Restoring again."),
            _("Unable to retry: %s"),
        ),
        "abandon": (
            "operation_abandon",
            _("Giving the server back."),
            _("Unable to abandon the restore: %s"),
        ),
    }

    def post(self, request, operation_id, action):
        call, done, failed = self.actions[action]
        try:
            operation = _found(
                getattr(snapmanager, call), request, operation_id
            )
        except snapmanager.APIError as exc:
            messages.error(request, failed % exc)
            operation_id_next = operation_id
        else:
            messages.success(request, done)
            operation_id_next = operation.id
        return http.HttpResponseRedirect(
            reverse(
                "horizon:project:snapshot_policies:operation",
                args=[operation_id_next],
            )
        )
