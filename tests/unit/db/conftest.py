import pytest

from snapmanager_nova import context as sm_context
from tests.unit.db import fixtures


@pytest.fixture
def engine(tmp_path):
    """A fresh SQLite database with the models' schema.

    A file, not ``sqlite://``: an in-memory database exists per
    connection, and the pool may hand out several.
    """
    url = f"sqlite:///{tmp_path / 'snapmanager.sqlite'}"
    with fixtures.database(url, create_schema=True) as engine:
        yield engine


@pytest.fixture
def ctx(engine):
    return sm_context.get_admin_context()
