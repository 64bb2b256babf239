import pytest


@pytest.fixture(params=["sqlite", "mariadb"])
def database_url(request, tmp_path):
    """An empty database: a SQLite file, or a fresh MariaDB database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'snapmanager.sqlite'}"
    return request.getfixturevalue("mariadb_database_url")
