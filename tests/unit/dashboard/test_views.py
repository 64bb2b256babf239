"""The plugin's views, tabs and actions with Horizon's test helpers.

As manila-ui's tests do, the api/ functions (Snapmanager's and Nova's)
are mocked and their exact arguments asserted; tests/unit/dashboard/
test_api.py tests the functions themselves, and tests/e2e/
test_dashboard.py everything together in a browser.
"""

import copy
import datetime
import types

from django import test as django_test
from django.conf import settings
from django.urls import reverse
from django.utils import html
from django.utils import module_loading
from novaclient import exceptions as nova_exceptions
from openstack_auth import policy as horizon_policy
from openstack_auth import utils as auth_utils
from openstack_dashboard import api
from openstack_dashboard.dashboards.project.instances import (
    tables as instance_tables,
)
from openstack_dashboard.dashboards.project.instances import (
    tabs as instance_tabs,
)
from openstack_dashboard.test import helpers

from snapmanager_dashboard.api import snapmanager
from snapmanager_dashboard.dashboards.project.instance_snapshots import (
    tables as snapshot_tables,
)
from snapmanager_dashboard.dashboards.project.instance_snapshots import tabs
from tests.unit.dashboard import fakes

INDEX_URL = reverse("horizon:project:snapshot_policies:index")
TAB_URL = snapshot_tables.snapshots_tab_url


def _url(name, *args):
    return reverse("horizon:project:snapshot_policies:" + name, args=args)


def _snapshots_tab(request, server):
    """The Snapshots tab as the detail page's tab group makes it."""
    group = types.SimpleNamespace(kwargs={"instance": server})
    return tabs.SnapshotsTab(group, request)


def _instance_action_shown(request, server):
    """Whether the Instances table shows "Snapshot policy" on ``server``:
    the table's own check (permissions, policy, ``allowed``) of our action
    alone, since Horizon's own actions call Nova and Neutron for theirs."""
    table = instance_tables.InstancesTable(request, data=[server])
    action = copy.copy(table.base_actions["snapmanager_policy"])
    action.table = table
    return table._filter_action(action, request, server)


class SnapmanagerTestCase(helpers.TestCase):
    """A user whose catalog has a ``snapmanager`` endpoint (unless a test
    class says otherwise)."""

    with_endpoint = True

    def _setup_user(self, **kwargs):
        if self.with_endpoint:
            kwargs.setdefault(
                "service_catalog",
                fakes.catalog_with_snapmanager(self.service_catalog),
            )
        super()._setup_user(**kwargs)

    def setActiveUser(self, *args, **kwargs):
        super().setActiveUser(*args, **kwargs)
        # The tests that build tables and tabs themselves use
        # self.request, which no middleware gives a user.
        if hasattr(self, "request"):
            self.request.user = auth_utils.get_user(self.request)

    def setUp(self):
        super().setUp()
        self.request.user = auth_utils.get_user(self.request)

    def server(self):
        server = self.servers.first()
        server.id = fakes.SERVER_ID
        return server


class PanelTests(SnapmanagerTestCase):
    @helpers.create_mocks(
        {
            api.nova: ["server_list"],
            snapmanager: [
                "policy_list",
                "snapshot_list",
                "default_policy_get",
            ],
        }
    )
    def test_every_server_with_its_policy_freshness_and_default(self):
        fresh, stale, off = self.servers.list()[:3]
        now = datetime.datetime.now(datetime.UTC)
        self.mock_server_list.return_value = ([fresh, stale, off], False)
        self.mock_policy_list.return_value = [
            snapmanager.Policy(fakes.policy(server_id=fresh.id)),
            snapmanager.Policy(fakes.policy(server_id=stale.id)),
        ]
        self.mock_snapshot_list.return_value = [
            snapmanager.Snapshot(
                fakes.snapshot(
                    server_id=fresh.id,
                    window_start=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                )
            ),
            # The stale server's only snapshot is from March.
            snapmanager.Snapshot(fakes.snapshot(server_id=stale.id)),
        ]
        self.mock_default_policy_get.return_value = snapmanager.Policy(
            {"project_id": "1", "schedules": [fakes.schedule(spec="every@6h")]}
        )

        res = self.client.get(INDEX_URL)

        self.assertTemplateUsed(res, "project/snapshot_policies/index.html")
        rows = {row.id: row for row in res.context["table"].data}
        assert set(rows) == {fresh.id, stale.id, off.id}
        assert rows[fresh.id].late == []
        assert [s["spec"] for s in rows[stale.id].late] == ["daily@02:30"]
        assert rows[off.id].policy is None
        self.assertContains(res, "Late: daily@02:30", count=1)
        self.assertContains(res, "daily@02:30 (Europe/Berlin), keep 7")
        self.assertContains(res, "every@6h (Europe/Berlin)")
        self.mock_server_list.assert_called_once_with(helpers.IsHttpRequest())
        self.mock_policy_list.assert_called_once_with(helpers.IsHttpRequest())
        self.mock_snapshot_list.assert_called_once_with(
            helpers.IsHttpRequest(), status="available"
        )

    @helpers.create_mocks(
        {
            api.nova: ["server_list"],
            snapmanager: [
                "policy_list",
                "snapshot_list",
                "default_policy_get",
            ],
        }
    )
    def test_an_api_error_is_a_message_not_a_500(self):
        self.mock_server_list.return_value = ([self.server()], False)
        self.mock_policy_list.side_effect = snapmanager.APIError(
            503, "The service is down for maintenance."
        )

        res = self.client.get(INDEX_URL)

        assert res.status_code == 200
        self.assertMessageCount(res, error=1)
        self.assertContains(res, "The service is down for maintenance.")


class PanelWithoutEndpointTests(SnapmanagerTestCase):
    with_endpoint = False

    @helpers.create_mocks({snapmanager: ["policy_list", "policy_get"]})
    def test_panel_and_its_pages_are_hidden(self):
        for url in (INDEX_URL, _url("policy", fakes.SERVER_ID)):
            res = self.client.get(url)
            # Horizon's answer to a panel the user may not use, without
            # a call to the API.
            assert res.status_code == 403, url
        self.mock_policy_list.assert_not_called()
        self.mock_policy_get.assert_not_called()

    def test_no_row_action_and_no_tab(self):
        server = self.server()
        assert not _instance_action_shown(self.request, server)
        assert not _snapshots_tab(self.request, server)._allowed


class InstancesPageTests(SnapmanagerTestCase):
    def test_the_tab_is_on_the_instance_detail_page(self):
        # Horizon builds the detail page's tab group from EXTRA_TABS;
        # the group's other tabs call Nova to decide on themselves.
        group = "%s.%s" % (
            instance_tabs.InstanceDetailTabs.__module__,
            instance_tabs.InstanceDetailTabs.__name__,
        )
        (entry,) = settings.HORIZON_CONFIG["extra_tabs"][group]
        assert module_loading.import_string(entry[1]) is tabs.SnapshotsTab

    def test_row_action_after_create_snapshot(self):
        server = self.server()
        assert _instance_action_shown(self.request, server)
        table = instance_tables.InstancesTable(self.request, data=[server])
        names = [a.name for a in table._meta.row_actions]
        assert names.index("snapmanager_policy") == names.index("snapshot") + 1
        action = copy.copy(table.base_actions["snapmanager_policy"])
        action.table = table
        assert action.get_link_url(server) == "%s?next=%s" % (
            _url("policy", server.id),
            self.request.path,
        )

    @helpers.create_mocks({snapmanager: ["snapshot_list", "policy_get"]})
    def test_snapshots_tab_lists_newest_first_with_their_schedule(self):
        server = self.server()
        self.mock_snapshot_list.return_value = [
            snapmanager.Snapshot(fakes.snapshot(id="old")),
            snapmanager.Snapshot(
                fakes.snapshot(
                    id="new",
                    schedule_id=None,
                    window_start="2026-03-30T10:00:00Z",
                    status="creating",
                )
            ),
        ]
        self.mock_policy_get.return_value = snapmanager.Policy(fakes.policy())
        tab = _snapshots_tab(self.request, server)
        assert tab._allowed and not tab.preload
        tab.load_table_data()
        table = tab._tables["snapmanager_snapshots"]
        assert [s.id for s in table.data] == ["new", "old"]
        html = table.render()
        assert "On request" in html and "daily@02:30" in html
        # The table posts to, and refreshes rows from, its own page.
        assert table.get_full_url() == _url("snapshots", server.id)
        self.mock_snapshot_list.assert_called_once_with(
            helpers.IsHttpRequest(), server_id=server.id
        )
        self.mock_policy_get.assert_called_once_with(
            helpers.IsHttpRequest(), server.id
        )

    @helpers.create_mocks({snapmanager: ["snapshot_list", "policy_get"]})
    def test_an_unavailable_snapshot_says_why_and_offers_nothing(self):
        server = self.server()
        reason = "The compute host storing this snapshot is gone."
        self.mock_snapshot_list.return_value = [
            snapmanager.Snapshot(
                fakes.snapshot(
                    id="far", status="unavailable", unavailable_reason=reason
                )
            )
        ]
        self.mock_policy_get.return_value = snapmanager.Policy(fakes.policy())
        tab = _snapshots_tab(self.request, server)
        tab.load_table_data()
        table = tab._tables["snapmanager_snapshots"]
        (row,) = table.get_rows()
        html = table.render()
        assert "Unavailable" in html and reason in html
        # Settled: the row does not keep refreshing.
        assert row.status is False
        # Neither restored nor deleted until its host is back.
        (snapshot,) = table.data
        for action in table.get_row_actions(snapshot):
            assert action.name not in ("restore", "delete"), action.name


class PolicyFormTests(SnapmanagerTestCase):
    @helpers.create_mocks(
        {api.nova: ["server_get"], snapmanager: ["policy_get"]}
    )
    def test_form_shows_the_policy_and_next_run(self):
        self.mock_server_get.return_value = self.server()
        self.mock_policy_get.return_value = snapmanager.Policy(fakes.policy())

        res = self.client.get(_url("policy", fakes.SERVER_ID))

        self.assertTemplateUsed(res, "project/snapshot_policies/policy.html")
        form = res.context["form"]
        assert form.initial["family"] == "daily"
        assert form.initial["time"] == "02:30"
        assert form.initial["timezone"] == "Europe/Berlin"
        assert form.initial["keep"] == 7
        self.assertContains(res, "daily@02:30 (Europe/Berlin)")
        self.assertContains(res, "2026-03-29 00:30 UTC")

    @helpers.create_mocks(
        {api.nova: ["server_get"], snapmanager: ["policy_get"]}
    )
    def test_default_timezone_is_the_users_horizon_setting(self):
        self.mock_server_get.return_value = self.server()
        self.mock_policy_get.return_value = None
        self.client.cookies["django_timezone"] = "Asia/Tokyo"

        res = self.client.get(_url("policy", fakes.SERVER_ID))

        form = res.context["form"]
        assert form.initial["timezone"] == "Asia/Tokyo"
        assert form.initial["snapshots_on"] is True
        self.assertContains(res, "Snapshots are off for this server.")

    @helpers.create_mocks(
        {api.nova: ["server_get"], snapmanager: ["policy_get", "policy_set"]}
    )
    def test_daily_at_0200_keep_7(self):
        self.mock_server_get.return_value = self.server()
        self.mock_policy_get.return_value = None
        self.mock_policy_set.return_value = snapmanager.Policy(
            fakes.policy(schedules=[fakes.schedule(spec="daily@02:00")])
        )
        form = {
            "server_id": fakes.SERVER_ID,
            "snapshots_on": "on",
            "family": "daily",
            "time": "02:00",
            "timezone": "Europe/Berlin",
            "keep": "7",
            "keep_after_delete": "on",
        }

        res = self.client.post(
            _url("policy", fakes.SERVER_ID) + "?next=/project/instances/",
            form,
        )

        self.assertNoFormErrors(res)
        self.assertRedirectsNoFollow(res, "/project/instances/")
        self.mock_policy_set.assert_called_once_with(
            helpers.IsHttpRequest(),
            fakes.SERVER_ID,
            [
                {
                    "spec": "daily@02:00",
                    "timezone": "Europe/Berlin",
                    "retention": {"keep_count": 7},
                }
            ],
            True,
        )

    @helpers.create_mocks(
        {api.nova: ["server_get"], snapmanager: ["policy_get", "policy_set"]}
    )
    def test_advanced_frequencies(self):
        self.mock_server_get.return_value = self.server()
        self.mock_policy_get.return_value = None
        self.mock_policy_set.return_value = snapmanager.Policy(fakes.policy())
        cases = (
            (
                {"family": "weekly", "weekday": "sun", "time": "03:00"},
                "weekly@sun@03:00",
            ),
            (
                {"family": "monthly", "day": "31", "time": "01:00"},
                "monthly@31@01:00",
            ),
            (
                {"family": "every", "hours": "6", "time": "00:30"},
                "every@6h@00:30",
            ),
            ({"family": "spec", "spec": " 6@mon-fri@7,19 "}, "6@mon-fri@7,19"),
        )
        for fields, spec in cases:
            self.mock_policy_set.reset_mock()
            form = dict(
                fields,
                server_id=fakes.SERVER_ID,
                snapshots_on="on",
                timezone="UTC",
            )
            res = self.client.post(_url("policy", fakes.SERVER_ID), form)
            self.assertNoFormErrors(res)
            ((_request, _server, schedules, _keep), _kw) = (
                self.mock_policy_set.call_args
            )
            assert schedules == [{"spec": spec, "timezone": "UTC"}]

    @helpers.create_mocks(
        {api.nova: ["server_get"], snapmanager: ["policy_get", "policy_set"]}
    )
    def test_missing_field_of_a_frequency_is_a_form_error(self):
        self.mock_server_get.return_value = self.server()
        self.mock_policy_get.return_value = None
        form = {
            "server_id": fakes.SERVER_ID,
            "snapshots_on": "on",
            "family": "weekly",
            "time": "03:00",
            "timezone": "UTC",
        }
        res = self.client.post(_url("policy", fakes.SERVER_ID), form)
        self.assertFormErrors(res, 1)
        self.mock_policy_set.assert_not_called()

    @helpers.create_mocks(
        {
            api.nova: ["server_get"],
            snapmanager: ["policy_get", "policy_delete"],
        }
    )
    def test_switching_snapshots_off(self):
        self.mock_server_get.return_value = self.server()
        self.mock_policy_get.return_value = snapmanager.Policy(fakes.policy())
        # Switching off: the schedule's fields do not matter, even empty.
        form = {"server_id": fakes.SERVER_ID, "family": "weekly"}

        res = self.client.post(_url("policy", fakes.SERVER_ID), form)

        self.assertRedirectsNoFollow(res, INDEX_URL)
        self.mock_policy_delete.assert_called_once_with(
            helpers.IsHttpRequest(), fakes.SERVER_ID
        )

    @helpers.create_mocks(
        {api.nova: ["server_get"], snapmanager: ["policy_get", "policy_set"]}
    )
    def test_the_apis_refusal_is_shown_in_its_words(self):
        self.mock_server_get.return_value = self.server()
        self.mock_policy_get.return_value = None
        message = "schedules[0].timezone: 'Mars/Olympus' is not a timezone"
        self.mock_policy_set.side_effect = snapmanager.APIError(400, message)
        form = {
            "server_id": fakes.SERVER_ID,
            "snapshots_on": "on",
            "family": "daily",
            "time": "02:00",
            "timezone": "UTC",
            "keep": "7",
        }

        res = self.client.post(_url("policy", fakes.SERVER_ID), form)

        assert res.status_code == 200
        self.assertMessageCount(res, error=1)
        self.assertContains(res, html.escape(message))

    @helpers.create_mocks(
        {api.nova: ["server_get"], snapmanager: ["policy_get"]}
    )
    def test_another_projects_server_is_not_found(self):
        self.mock_server_get.side_effect = nova_exceptions.NotFound(404)
        res = self.client.get(_url("policy", fakes.SERVER_ID))
        assert res.status_code == 404
        self.mock_policy_get.assert_not_called()


class DefaultPolicyTests(SnapmanagerTestCase):
    @helpers.create_mocks(
        {snapmanager: ["default_policy_get", "default_policy_set"]}
    )
    def test_set_the_projects_default(self):
        self.mock_default_policy_get.return_value = None
        self.mock_default_policy_set.return_value = snapmanager.Policy(
            {"project_id": "1", "schedules": []}
        )
        form = {
            "family": "every",
            "hours": "12",
            "time": "00:00",
            "timezone": "UTC",
            "keep": "14",
        }

        res = self.client.post(_url("default"), form)

        self.assertNoFormErrors(res)
        self.assertRedirectsNoFollow(res, INDEX_URL)
        self.mock_default_policy_set.assert_called_once_with(
            helpers.IsHttpRequest(),
            [
                {
                    "spec": "every@12h@00:00",
                    "timezone": "UTC",
                    "retention": {"keep_count": 14},
                }
            ],
        )


class SnapshotTests(SnapmanagerTestCase):
    @helpers.create_mocks(
        {api.nova: ["server_get"], snapmanager: ["snapshot_create"]}
    )
    def test_take_a_snapshot_now(self):
        self.mock_server_get.return_value = self.server()
        self.mock_snapshot_create.return_value = (
            snapmanager.Snapshot(fakes.snapshot(status="creating")),
            snapmanager.Operation(fakes.operation(type="snapshot")),
        )
        form = {"server_id": fakes.SERVER_ID, "quiesce": "prefer"}

        res = self.client.post(_url("take_now", fakes.SERVER_ID), form)

        self.assertNoFormErrors(res)
        self.assertRedirectsNoFollow(res, TAB_URL(fakes.SERVER_ID))
        self.mock_snapshot_create.assert_called_once_with(
            helpers.IsHttpRequest(), fakes.SERVER_ID, quiesce="prefer"
        )

    @helpers.create_mocks(
        {
            api.nova: ["server_get"],
            snapmanager: ["snapshot_list", "policy_get", "snapshot_delete"],
        }
    )
    def test_delete_goes_back_to_the_tab(self):
        self.mock_server_get.return_value = self.server()
        self.mock_snapshot_list.return_value = [
            snapmanager.Snapshot(fakes.snapshot())
        ]
        self.mock_policy_get.return_value = None

        res = self.client.post(
            _url("snapshots", fakes.SERVER_ID),
            {
                "action": "snapmanager_snapshots__delete__%s"
                % fakes.SNAPSHOT_ID
            },
        )

        self.assertRedirectsNoFollow(res, TAB_URL(fakes.SERVER_ID))
        self.mock_snapshot_delete.assert_called_once_with(
            helpers.IsHttpRequest(), fakes.SNAPSHOT_ID
        )

    @helpers.create_mocks(
        {
            api.nova: ["server_get"],
            snapmanager: ["snapshot_get", "snapshot_restore"],
        }
    )
    def test_restore_says_what_happens_then_follows_the_operation(self):
        self.mock_server_get.return_value = self.server()
        self.mock_snapshot_get.return_value = snapmanager.Snapshot(
            fakes.snapshot()
        )
        self.mock_snapshot_restore.return_value = snapmanager.Operation(
            fakes.operation(state="pending", progress=0)
        )
        url = _url("restore", fakes.SNAPSHOT_ID)

        res = self.client.get(url)
        for words in (
            "stopped",
            "its disks go back to how they were at 2026-03-29 00:30 UTC",
            "everything written to them after that moment is lost",
            "started again",
        ):
            self.assertContains(res, words)

        res = self.client.post(url, {"snapshot_id": fakes.SNAPSHOT_ID})
        self.assertRedirectsNoFollow(
            res, _url("operation", fakes.OPERATION_ID)
        )
        self.mock_snapshot_restore.assert_called_once_with(
            helpers.IsHttpRequest(), fakes.SNAPSHOT_ID
        )

    @helpers.create_mocks({snapmanager: ["snapshot_get", "operation_get"]})
    def test_another_projects_snapshot_and_operation_are_not_found(self):
        self.mock_snapshot_get.side_effect = snapmanager.APIError(
            404, "Snapshot not found."
        )
        self.mock_operation_get.side_effect = snapmanager.APIError(
            404, "Operation not found."
        )
        for url in (
            _url("restore", fakes.SNAPSHOT_ID),
            _url("operation", fakes.OPERATION_ID),
        ):
            res = self.client.get(url)
            assert res.status_code == 404, url


class OperationTests(SnapmanagerTestCase):
    @helpers.create_mocks(
        {api.nova: ["server_get"], snapmanager: ["operation_get"]}
    )
    def test_an_unfinished_operation_reloads(self):
        self.mock_server_get.return_value = self.server()
        self.mock_operation_get.return_value = snapmanager.Operation(
            fakes.operation()
        )
        res = self.client.get(_url("operation", fakes.OPERATION_ID))
        self.assertContains(res, 'data-state="running"')
        self.assertContains(res, "restoring disks")
        self.assertContains(res, "window.location.reload()")
        self.assertContains(res, "<title>Restore of server_1")

    @helpers.create_mocks(
        {api.nova: ["server_get"], snapmanager: ["operation_get"]}
    )
    def test_a_finished_operation_stays(self):
        self.mock_server_get.side_effect = nova_exceptions.NotFound(404)
        self.mock_operation_get.return_value = snapmanager.Operation(
            fakes.operation(state="succeeded", progress=100)
        )
        res = self.client.get(_url("operation", fakes.OPERATION_ID))
        self.assertNotContains(res, "window.location.reload()")
        self.assertNotContains(res, "Retry the restore")
        # The server is gone from Nova: its id names it.
        self.assertContains(res, "<title>Restore of %s" % fakes.SERVER_ID)

    @helpers.create_mocks(
        {
            api.nova: ["server_get"],
            snapmanager: [
                "operation_get",
                "operation_retry",
                "operation_abandon",
            ],
        }
    )
    def test_a_failed_restore_offers_retry_and_abandon(self):
        self.mock_server_get.return_value = self.server()
        self.mock_operation_get.return_value = snapmanager.Operation(
            fakes.operation(
                state="failed", error="Nova did not start the server."
            )
        )
        res = self.client.get(_url("operation", fakes.OPERATION_ID))
        self.assertContains(res, "Nova did not start the server.")
        self.assertContains(res, "Retry the restore")
        self.assertContains(res, "Abandon the restore")

        self.mock_operation_retry.return_value = snapmanager.Operation(
            fakes.operation(id="next-one", state="pending")
        )
        res = self.client.post(
            reverse(
                "horizon:project:snapshot_policies:operation_action",
                args=[fakes.OPERATION_ID, "retry"],
            )
        )
        self.assertRedirectsNoFollow(res, _url("operation", "next-one"))
        self.mock_operation_retry.assert_called_once_with(
            helpers.IsHttpRequest(), fakes.OPERATION_ID
        )

        self.mock_operation_abandon.side_effect = snapmanager.APIError(
            409, "The operation no longer holds its server."
        )
        res = self.client.post(
            reverse(
                "horizon:project:snapshot_policies:operation_action",
                args=[fakes.OPERATION_ID, "abandon"],
            )
        )
        self.assertRedirectsNoFollow(
            res, _url("operation", fakes.OPERATION_ID)
        )
        self.assertMessageCount(error=1)


class RoleTests(SnapmanagerTestCase):
    """Buttons follow the API's own rules (the shipped default file)."""

    def setUp(self):
        super().setUp()
        override = django_test.override_settings(
            POLICY_CHECK_FUNCTION="openstack_auth.policy.check",
            # Only Snapmanager's rules: these tests check its buttons.
            POLICY_FILES={"snapmanager": settings.POLICY_FILES["snapmanager"]},
        )
        override.enable()
        self.addCleanup(override.disable)
        horizon_policy.reset()
        self.addCleanup(horizon_policy.reset)

    def _as(self, *roles):
        self.setActiveUser(
            id=self.user.id,
            token=self.token,
            username=self.user.name,
            domain_id=self.domain.id,
            user_domain_name=self.domain.name,
            user_domain_id=self.domain.id,
            tenant_id=self.tenant.id,
            service_catalog=fakes.catalog_with_snapmanager(
                self.service_catalog
            ),
            authorized_tenants=self.tenants.list(),
            roles=[{"id": str(i), "name": r} for i, r in enumerate(roles)],
        )

    def _snapshot_actions(self):
        server = self.server()
        snapshot = snapmanager.Snapshot(fakes.snapshot())
        table = snapshot_tables.SnapshotsTable(
            self.request, data=[snapshot], server_id=server.id
        )
        return {a.name for a in table.get_table_actions()} | {
            a.name for a in table.get_row_actions(snapshot)
        }

    def _instance_action(self):
        server = self.server()
        server.tenant_id = self.tenant.id
        return _instance_action_shown(self.request, server)

    def test_a_reader_gets_no_write_button(self):
        self._as("reader")
        assert self._snapshot_actions() == set()
        assert not self._instance_action()

    def test_a_member_gets_every_button(self):
        self._as("member", "reader")
        assert self._snapshot_actions() == {"take_now", "restore", "delete"}
        assert self._instance_action()

    def test_another_projects_member_gets_no_button_on_it(self):
        self._as("member", "reader")
        server = self.server()
        server.tenant_id = "another-project"
        assert not _instance_action_shown(self.request, server)


class RowRefreshTests(SnapmanagerTestCase):
    @helpers.create_mocks(
        {
            api.nova: ["server_get"],
            snapmanager: ["snapshot_get", "policy_get"],
        }
    )
    def test_a_changing_row_refreshes_from_the_tables_own_page(self):
        self.mock_server_get.return_value = self.server()
        self.mock_snapshot_get.return_value = snapmanager.Snapshot(
            fakes.snapshot(status="deleting")
        )
        self.mock_policy_get.return_value = None
        url = "%s?action=row_update&table=snapmanager_snapshots&obj_id=%s" % (
            _url("snapshots", fakes.SERVER_ID),
            fakes.SNAPSHOT_ID,
        )

        res = self.client.get(url, HTTP_X_REQUESTED_WITH="XMLHttpRequest")

        assert res.status_code == 200
        self.assertContains(res, 'data-object-id="%s"' % fakes.SNAPSHOT_ID)
        self.assertContains(res, "Deleting")
        # Still changing: the row asks again.
        self.assertContains(res, "ajax-update")
        self.mock_snapshot_get.assert_called_once_with(
            helpers.IsHttpRequest(), fakes.SNAPSHOT_ID
        )
