"""bashate and shellcheck pass on every shell script of the project: the
DevStack plugin and its test harness, the test command and CI's entry
point, and the install tools."""

import pathlib
import subprocess
import sys

import pytest

from tests.unit.devstack.plugin_run import DEVSTACK
from tests.unit.devstack.plugin_run import HARNESS

BIN = pathlib.Path(sys.executable).parent
TOP = DEVSTACK.parent
SCRIPTS = [
    DEVSTACK / "plugin.sh",
    DEVSTACK / "settings",
    DEVSTACK / "override-defaults",
    TOP / ".ci" / "run",
    *sorted((TOP / "tools").rglob("*.sh")),
]
# DevStack's own bashate run (its tox.ini): long lines are allowed, a file
# that does not say it is bash and a `local x=$(...)` that hides a failure
# are errors.
BASHATE = [str(BIN / "bashate"), "-v", "-i", "E006", "-e", "E005,E042"]
SHELLCHECK = [str(BIN / "shellcheck"), "--shell=bash", "--severity=style"]


def _run(argv):
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "script", SCRIPTS, ids=lambda p: str(p.relative_to(TOP))
)
def test_bashate(script):
    result = _run([*BASHATE, str(script)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning" not in result.stdout + result.stderr


def test_shellcheck():
    result = _run([*SHELLCHECK, *map(str, SCRIPTS), str(HARNESS)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_linters_do_find_faults(tmp_path):
    # The same commands on a script with one fault of each kind fail: the
    # tests above cannot pass because a linter did not look.
    bad = tmp_path / "bad.sh"
    bad.write_text(
        "#!/bin/bash\nfunction f {\n  local x=$(date)\n  echo $x $1\n}\n"
    )
    bashate = _run([*BASHATE, str(bad)])
    assert bashate.returncode != 0
    assert "E003" in bashate.stdout and "E042" in bashate.stdout
    shellcheck = _run([*SHELLCHECK, str(bad)])
    assert shellcheck.returncode != 0
    assert "SC2086" in shellcheck.stdout
