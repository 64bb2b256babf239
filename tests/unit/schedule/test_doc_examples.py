"""Every row of the tables in doc/source/schedules.rst, run as a test.

The document is the reference for the spec grammar; reading its tables
here means it cannot drift from the code.
"""

import datetime
import pathlib

import pytest

from snapmanager_nova import schedule

DOC = (
    pathlib.Path(__file__).resolve().parents[3]
    / "doc"
    / "source"
    / "schedules.rst"
)

NEVER = "(never)"


def read_list_table(name):
    """Return the body rows of the list-table ``name``, cells as text.

    Handles the subset of list-table the document uses: one header row,
    cells of one or more lines, ``literal`` markup around a whole cell.
    A cell's lines are joined with single spaces, as RST renders them.
    """
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = lines.index(f"   :name: {name}")
    rows = []
    for line in lines[start + 1 :]:
        if line and not line.startswith("   "):
            break
        stripped = line.strip()
        if line.startswith("   * - "):
            rows.append([stripped[4:]])
        elif line.startswith("     - "):
            rows[-1].append(stripped[2:])
        elif stripped and rows and not stripped.startswith(":"):
            rows[-1][-1] += " " + stripped
    return [[_unliteral(cell) for cell in row] for row in rows[1:]]


def _unliteral(cell):
    if cell.startswith("``") and cell.endswith("``"):
        return cell[2:-2]
    return cell


EXAMPLES = read_list_table("schedule-examples")
ERRORS = read_list_table("schedule-errors")


def test_tables_were_found():
    # A renamed table or a changed layout must not silently pass with
    # zero rows.
    assert len(EXAMPLES) >= 30
    assert len(ERRORS) >= 20
    families = {
        schedule.parse_spec(spec, timezone).family
        for spec, _canonical, timezone, _start, _runs in EXAMPLES
    }
    assert families == set(schedule.FAMILIES)


@pytest.mark.parametrize(
    ("text", "canonical", "timezone", "start", "runs"),
    EXAMPLES,
    ids=[f"{row[0]}-{row[2]}-{row[3]}" for row in EXAMPLES],
)
def test_example(text, canonical, timezone, start, runs):
    spec = schedule.parse_spec(text, timezone)
    assert spec.text == canonical
    assert schedule.parse_spec(canonical, timezone) == spec
    # "From" is a wall time in the spec's timezone, as the CLI reads it.
    after = datetime.datetime.fromisoformat(start).replace(tzinfo=spec.tz)
    expected = [] if runs == NEVER else runs.split()
    got = [
        run.astimezone(spec.tz).isoformat(timespec="minutes")
        for run in spec.runs(after, max(len(expected), 1))
    ]
    assert got == expected


@pytest.mark.parametrize(
    ("text", "timezone", "message"),
    ERRORS,
    ids=[row[0] for row in ERRORS],
)
def test_error(text, timezone, message):
    with pytest.raises(schedule.SpecError) as caught:
        schedule.parse_spec(text, timezone)
    assert str(caught.value) == message
    field, _, rest = message.partition(": ")
    assert caught.value.field == field
    assert caught.value.message == rest
