"""`snapmanager-manage db sync` works from an installed wheel.

The wheel is built from a copy of the source tree (so the checkout gains
no build/ or egg-info), installed with --prefix, and run from outside the
tree with PYTHONPATH putting the wheel's package before the editable one:
the migrations must then come from <prefix>/share/snapmanager.
"""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from snapmanager_nova.db import migration

pytestmark = pytest.mark.functional

SOURCE = pathlib.Path(__file__).resolve().parents[3]
PYTHON = sys.executable


def run(*args, **kwargs):
    result = subprocess.run(
        args, capture_output=True, text=True, timeout=300, **kwargs
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    top = tmp_path_factory.mktemp("wheel")
    src = top / "src"
    shutil.copytree(
        SOURCE,
        src,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            ".testenv",
            ".ruff_cache",
            "__pycache__",
            "*.egg-info",
            "build",
            "dist",
            "*.deb",
        ),
    )
    env = dict(
        os.environ,
        # pbr needs a version when there is no git history to read it from.
        PBR_VERSION="0.1.0",
        SKIP_GENERATE_AUTHORS="1",
        SKIP_WRITE_GIT_CHANGELOG="1",
    )
    out = top / "dist"
    # The venv's pbr and setuptools build it: no index needed.
    run(
        "uv",
        "build",
        "--wheel",
        "--no-build-isolation",
        "--python",
        PYTHON,
        "--out-dir",
        str(out),
        str(src),
        env=env,
    )
    (built,) = out.glob("snapmanager-*.whl")
    return built


def test_db_sync_from_an_installed_wheel(wheel, tmp_path):
    prefix = tmp_path / "prefix"
    run(
        "uv",
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
