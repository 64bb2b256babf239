"""The alembic runner, on SQLite."""

import importlib.util

import pytest
import sqlalchemy as sa
from alembic import script as alembic_script

from snapmanager_nova import exception
from snapmanager_nova.db import migration
from tests.unit.db import fixtures


def revisions():
    config = migration._alembic_config()
    script = alembic_script.ScriptDirectory.from_config(config)
    return list(script.walk_revisions())


def test_found_in_the_source_tree():
    found = migration.migrations_dir()
    assert found == migration._source_tree_dir()
    assert (found / "env.py").is_file()


def test_not_found_lists_where_it_looked(monkeypatch, tmp_path):
    monkeypatch.setattr(migration, "_source_tree_dir", lambda: tmp_path)
    monkeypatch.setattr(migration, "_distribution_dirs", lambda: iter(()))
    monkeypatch.setattr(migration.sys, "prefix", str(tmp_path / "prefix"))
    with pytest.raises(exception.SnapmanagerException) as raised:
        migration.migrations_dir()
    assert str(tmp_path / "prefix") in str(raised.value)


def test_one_linear_history_without_downgrades():
    history = revisions()
    assert len({r.revision for r in history if r.is_head}) == 1
    assert [r for r in history if r.is_base] == [history[-1]]
    assert migration.head() == history[0].revision
    for revision in history:
        spec = importlib.util.spec_from_file_location("rev", revision.path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert not hasattr(module, "downgrade"), revision.path


def test_upgrade_and_version_use_the_db_api_engine(tmp_path):
    url = f"sqlite:///{tmp_path / 'sync.sqlite'}"
    with fixtures.database(url) as engine:
        assert migration.version() is None
        migration.upgrade()
        assert migration.version() == migration.head()
        # Running it again is harmless.
        migration.upgrade("head")
        assert migration.version() == migration.head()
        tables = set(sa.inspect(engine).get_table_names())
    assert {"instances", "schedules", "snapshots", "operations"} < tables
