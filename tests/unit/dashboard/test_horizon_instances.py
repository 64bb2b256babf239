"""Horizon's own Instances table tests, run with the plugin enabled.

The plugin adds a row action to Horizon's ``InstancesTable`` and a tab
to its detail page (extend.py): Horizon's tests of that table, shipped
in its package, must pass as they are, both for a cloud without a
``snapmanager`` endpoint (nothing may change) and with one (the action
is there and must disturb nothing, and call no API of its own).
"""

from openstack_dashboard.dashboards.project.instances import (
    tests as horizon_instance_tests,
)

from tests.unit.dashboard import fakes


class TestInstanceTableWithoutSnapmanager(
    horizon_instance_tests.InstanceTableTests
):
    def test_index_has_no_snapshot_policy_action(self):
        res = self._get_index()
        self.assertNotContains(res, "action_snapmanager_policy")


class TestInstanceTableWithSnapmanager(
    horizon_instance_tests.InstanceTableTests
):
    def _setup_user(self, **kwargs):
        kwargs.setdefault(
            "service_catalog",
            fakes.catalog_with_snapmanager(self.service_catalog),
        )
        super()._setup_user(**kwargs)

    def test_index_has_the_snapshot_policy_action(self):
        # Not one of Horizon's tests: that the catalog above reached the
        # table, so Horizon's tests of this class ran with the action.
        res = self._get_index()
        for server in self.servers.list():
            self.assertContains(
                res,
                'id="instances__row_%s__action_snapmanager_policy"'
                % server.id,
            )
