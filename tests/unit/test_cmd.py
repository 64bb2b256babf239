"""Console scripts: every one answers --help; unfinished ones refuse."""

import pathlib
import subprocess
import sys

import pytest

BIN = pathlib.Path(sys.executable).parent
SCRIPTS = [
    "snapmanager-api",
    "snapmanager-conductor",
    "snapmanager-compute",
    "snapmanager-manage",
    "snapmanager-status",
]


def run(*args, **kwargs):
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=60,
        **kwargs,
    )


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_mentions_config_file(script):
    result = run(script, "--help")
    assert result.returncode == 0, result.stderr
    assert "--config-file" in result.stdout


def test_bad_config_file_is_an_error(tmp_path):
    result = run(
        "snapmanager-manage",
        "--config-file",
        str(tmp_path / "missing.conf"),
        "db",
        "version",
    )
    assert result.returncode != 0
    assert "missing.conf" in result.stderr
