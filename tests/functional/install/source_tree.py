"""What the install tests share: the checkout as a user would receive it,
and a way to run commands with their output in the assertion."""

import os
import pathlib
import shutil
import subprocess
import sys

SOURCE = pathlib.Path(__file__).resolve().parents[3]
CONSTRAINTS = SOURCE / "upper-constraints.txt"
# The venv's own tools (uv is pinned by the constraints and lives there,
# not on PATH).
VENV_BIN = pathlib.Path(sys.executable).parent
# pbr needs a version when there is no git history to read it from.
BUILD_ENV = dict(
    os.environ,
    PBR_VERSION="0.1.0",
    SKIP_GENERATE_AUTHORS="1",
    SKIP_WRITE_GIT_CHANGELOG="1",
)


def copy_source(dest):
    """A copy of the source tree without the developer's state, so a build
    leaves the checkout without build/ or egg-info."""
    shutil.copytree(
        SOURCE,
        dest,
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
    return dest


def run(*args, check=True, timeout=600, **kwargs):
    """Run a command; with check, its output is the assertion's message."""
    result = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result
