"""The "Snapshot policy" row action on Horizon's Instances table.

Horizon has no setting that adds a row action to a Django table, so the
plugin adds it to ``InstancesTable`` itself when Django starts
(apps.py). The table's metaclass builds its action instances once, into
``base_actions``, and rows look actions up there by name: the action is
added to ``Meta.row_actions`` and to ``base_actions``. The instance
detail page draws its action menu from the same table, so the action is
there too.
"""

from openstack_dashboard.dashboards.project.instances import (
    tables as instance_tables,
)

from snapmanager_dashboard.dashboards.project.instance_snapshots import (
    tables as snapshot_tables,
)


def add_row_action(table_class, action_class, after):
    """Add ``action_class`` to the table's row actions after ``after``
    (at the end if the table has no such action); idempotent."""
    meta = table_class._meta
    actions = list(meta.row_actions)
    if action_class in actions:
        return
    index = actions.index(after) + 1 if after in actions else len(actions)
    actions.insert(index, action_class)
    meta.row_actions = tuple(actions)
    table_class.base_actions[action_class.name] = action_class()


def add_instance_action():
    add_row_action(
        instance_tables.InstancesTable,
        snapshot_tables.SnapshotPolicyAction,
        after=instance_tables.CreateSnapshot,
    )
