"""The documentation and the release notes build, warnings as errors.

A broken reference, a malformed table or a release note reno cannot read
fails the test command here rather than on a docs site later.
"""

import pathlib
import subprocess
import sys

import pytest
import yaml

TOP = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent


def build(source, out):
    result = subprocess.run(
        [
            BIN / "sphinx-build",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            source,
            out,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=TOP,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


@pytest.mark.parametrize("tree", ["doc/source", "releasenotes/source"])
def test_builds_without_warnings(tree, tmp_path):
    out = build(TOP / tree, tmp_path / "html")
    assert (out / "index.html").exists()


def test_every_release_note_is_valid_and_reported():
    lint = reno("lint")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    report = " ".join(reno("report").stdout.split())
    notes = sorted((TOP / "releasenotes" / "notes").glob("*.yaml"))
    assert notes
    for note in notes:
        for section, texts in yaml.safe_load(note.read_text()).items():
            texts = [texts] if isinstance(texts, str) else texts
            for text in texts:
                # reno reads notes from git: one that is not committed, or
                # that it cannot parse, is missing from the report.
                assert " ".join(text.split())[:60] in report, (note, section)


def reno(*args):
    result = subprocess.run(
        [BIN / "reno", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=TOP,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result
