"""Migrations walk up on SQLite and MariaDB and agree with the models.

Snapmanager supports upgrades only (see snapmanager_nova.db.migration), so
there is no downgrade walk.
"""

import pytest
import sqlalchemy as sa
from alembic import autogenerate
from alembic import script as alembic_script
from alembic.runtime import migration as alembic_migration

from snapmanager_nova.db import migration
from snapmanager_nova.db import models
from tests.unit.db import fixtures

pytestmark = pytest.mark.functional


def test_walk_up_every_revision(database_url):
    config = migration._alembic_config()
    script = alembic_script.ScriptDirectory.from_config(config)
    oldest_first = [r.revision for r in script.walk_revisions()][::-1]
    with fixtures.database(database_url):
        assert migration.version() is None
        for revision in oldest_first:
            migration.upgrade(revision)
            assert migration.version() == revision
        assert migration.version() == migration.head()


def test_models_and_migrations_agree(database_url):
    with fixtures.database(database_url) as engine:
        migration.upgrade("head")
        with engine.connect() as connection:
            context = alembic_migration.MigrationContext.configure(
                connection, opts={"compare_type": True}
            )
            diff = autogenerate.compare_metadata(context, models.Base.metadata)
        inspector = sa.inspect(engine)
        checks = {
            (table, check["name"])
            for table in models.Base.metadata.tables
            for check in inspector.get_check_constraints(table)
        }
    assert diff == []
    # compare_metadata ignores CHECK constraints; their names must agree
    # too, or a later migration could not drop them by name.
    assert checks == {
        (table.name, constraint.name)
        for table in models.Base.metadata.sorted_tables
        for constraint in table.constraints
        if isinstance(constraint, sa.CheckConstraint)
    }
