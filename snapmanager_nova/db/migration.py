"""Schema migrations: alembic, driven from code.

``snapmanager-manage db sync`` and ``db version`` call :func:`upgrade` and
:func:`version`. The alembic configuration is built here rather than read
from an ``alembic.ini``, and the migrations run on a connection of the
engine the DB API uses (``[database] connection``), handed to
``db/migrations/env.py`` through ``config.attributes``, so there is one
source of truth for where the database is.

Downgrades are not supported, as in the rest of OpenStack: the way back
from a failed upgrade is the backup taken before it. Revisions therefore
define ``upgrade()`` only.

The revisions live in the top-level ``db/migrations`` of the source tree;
setup.cfg installs them as data files into
``<prefix>/share/snapmanager/db/migrations``, so they are found both in a
checkout (or an editable install) and in an installed wheel.
"""

import importlib.metadata
import pathlib
import sys

from alembic import command as alembic_command
from alembic import config as alembic_config
from alembic import script as alembic_script
from alembic.runtime import migration as alembic_migration
from oslo_log import log as logging

from snapmanager_nova import exception
from snapmanager_nova.db import api as db_api

LOG = logging.getLogger(__name__)

DISTRIBUTION = "snapmanager"
_INSTALLED_DIR = ("share", "snapmanager", "db", "migrations")
_THIS_FILE = pathlib.Path(__file__).resolve()


def _source_tree_dir():
    # <checkout>/snapmanager_nova/db/migration.py -> <checkout>/db/migrations
    return _THIS_FILE.parents[2].joinpath("db", "migrations")


def _distribution_dirs():
    """Migrations installed by the distribution this module came from.

    Matching on this very file keeps an unrelated ``snapmanager`` install
    elsewhere on ``sys.path`` from supplying someone else's revisions.
    """
    marker = "/".join(_INSTALLED_DIR) + "/env.py"
    for dist in importlib.metadata.distributions(name=DISTRIBUTION):
        files = dist.files or []
        located = [pathlib.Path(dist.locate_file(f)) for f in files]
        if not any(
            path.name == _THIS_FILE.name and path.resolve() == _THIS_FILE
            for path in located
        ):
            continue
        for relative, path in zip(files, located, strict=True):
            if relative.as_posix().endswith(marker):
                yield path.resolve().parent


def migrations_dir():
    """The alembic script directory, or an error listing where we looked."""
    candidates = [_source_tree_dir(), *_distribution_dirs()]
    candidates += [
        pathlib.Path(prefix).joinpath(*_INSTALLED_DIR)
        for prefix in dict.fromkeys((sys.prefix, sys.base_prefix, "/usr"))
    ]
    for candidate in candidates:
        if candidate.joinpath("env.py").is_file():
            return candidate
    raise exception.SnapmanagerException(
        "Cannot find Snapmanager's database migrations; looked in "
        + ", ".join(str(c) for c in candidates)
    )


def _alembic_config():
    config = alembic_config.Config()
    # The value goes through ConfigParser interpolation.
    location = str(migrations_dir()).replace("%", "%%")
    config.set_main_option("script_location", location)
    return config


def upgrade(revision="head", engine=None):
    """Upgrade the schema to ``revision`` (default: the newest)."""
    engine = engine or db_api.get_engine()
    config = _alembic_config()
    LOG.info(
        "Upgrading the database to %s with the migrations in %s",
        revision,
        config.get_main_option("script_location"),
    )
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        alembic_command.upgrade(config, revision)


def version(engine=None):
    """The database's current revision, or None before the first sync."""
    engine = engine or db_api.get_engine()
    with engine.connect() as connection:
        context = alembic_migration.MigrationContext.configure(connection)
        return context.get_current_revision()


def head():
    """The newest revision this code knows."""
    script = alembic_script.ScriptDirectory.from_config(_alembic_config())
    return script.get_current_head()
