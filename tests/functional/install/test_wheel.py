"""`snapmanager-manage db sync` works from an installed wheel.

The wheel is built from a copy of the source tree (so the checkout gains
no build/ or egg-info), installed with --prefix, and run from outside the
tree with PYTHONPATH putting the wheel's package before the editable one:
the migrations must then come from <prefix>/share/snapmanager.
"""

import os
import sys

import pytest

from snapmanager_nova.db import migration
from tests.functional.install import source_tree

pytestmark = pytest.mark.functional

PYTHON = sys.executable
UV = str(source_tree.VENV_BIN / "uv")


def run(*args, **kwargs):
    return source_tree.run(*args, timeout=300, **kwargs).stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    top = tmp_path_factory.mktemp("wheel")
    src = source_tree.copy_source(top / "src")
    out = top / "dist"
    # The venv's pbr and setuptools build it: no index needed.
    run(
        UV,
        "build",
        "--wheel",
        "--no-build-isolation",
        "--python",
        PYTHON,
        "--out-dir",
        str(out),
        str(src),
        env=source_tree.BUILD_ENV,
    )
    (built,) = out.glob("snapmanager-*.whl")
    return built


def test_db_sync_from_an_installed_wheel(wheel, tmp_path):
    prefix = tmp_path / "prefix"
    run(
        UV,
        "pip",
        "install",
        "--no-deps",
        "--python",
        PYTHON,
        "--prefix",
        str(prefix),
        str(wheel),
    )
    (site,) = prefix.glob("lib/python3*/site-packages")
    env = dict(os.environ, PYTHONPATH=str(site))
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    config = workdir / "snapmanager.conf"
    database = workdir / "snapmanager.sqlite"
    config.write_text(f"[database]\nconnection = sqlite:///{database}\n")

    where = run(
        PYTHON,
        "-c",
        "import snapmanager_nova.db.migration as m;"
        "print(m.__file__); print(m.migrations_dir())",
        cwd=workdir,
        env=env,
    ).split()
    assert where == [
        str(site / "snapmanager_nova" / "db" / "migration.py"),
        str(prefix / "share" / "snapmanager" / "db" / "migrations"),
    ]

    manage = str(prefix / "bin" / "snapmanager-manage")
    run(
        manage,
        "--config-file",
        str(config),
        "db",
        "sync",
        cwd=workdir,
        env=env,
    )
    version = run(
        manage,
        "--config-file",
        str(config),
        "db",
        "version",
        cwd=workdir,
        env=env,
    )
    # oslo.log writes INFO lines to stdout too; the answer is the last line.
    assert version.strip().splitlines()[-1] == migration.head()
