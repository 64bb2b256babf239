"""snapmanager-status: pre-upgrade and health checks (oslo.upgradecheck)."""

import sys

from oslo_upgradecheck import upgradecheck

from snapmanager_nova import conf as sm_conf

CONF = sm_conf.CONF


class Checks(upgradecheck.UpgradeCommands):
    """Checks an operator runs before and after upgrading Snapmanager."""

    def _check_database_revision(self):
        from snapmanager_nova.db import migration

        try:
            current = migration.version()
        except Exception as exc:  # any DB error is the answer, not a crash
            return upgradecheck.Result(
                upgradecheck.Code.FAILURE,
                f"Cannot read the schema revision: {exc}",
            )
        head = migration.head()
        if current != head:
            return upgradecheck.Result(
                upgradecheck.Code.FAILURE,
                f"Schema is at {current or 'no revision'}, code expects "
                f"{head}: run `snapmanager-manage db sync`.",
            )
        return upgradecheck.Result(upgradecheck.Code.SUCCESS)

    _upgrade_checks = (("Database schema revision", _check_database_revision),)


def main(argv=None):
    return upgradecheck.main(
        CONF,
        project="snapmanager",
        upgrade_command=Checks(),
        argv=sys.argv[1:] if argv is None else argv,
    )


if __name__ == "__main__":
    sys.exit(main())
