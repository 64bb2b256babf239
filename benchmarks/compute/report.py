"""Timing helpers, the order of the measurements, and the tables."""

import functools
import statistics
import time

# Rows of every table, in this order; a case prints those it measured.
SNAPSHOT = "snapshot"
RESTORE = "restore"
DELETE = "delete"
PAUSE = "pause"
STALL = "guest stall"
XML_WINDOW = "XML window"
ROWS = (SNAPSHOT, RESTORE, DELETE, PAUSE, STALL, XML_WINDOW)

_COLUMNS = ("agent med", "agent p90", "raw med", "raw p90", "ratio")
_FIRST = 12
_WIDTH = 11


def timed(func, *args, **kwargs):
    """(seconds, result) of one call."""
    started = time.perf_counter()
    result = func(*args, **kwargs)
    return time.perf_counter() - started, result


def agent_restore(backend, instance, dom, index, result):
    """Seconds the agent's backend takes to restore snapshot ``index``."""
    seconds, _ = timed(backend.restore, instance, dom, index, result.disks)
    return seconds


def agent_delete(backend, instance_uuid, index, result):
    """Seconds the agent's backend takes to delete snapshot ``index``."""
    seconds, _ = timed(backend.delete, instance_uuid, index, result.disks)
    return seconds


def in_turn(repetition, agent, raw):
    """Call ``agent()`` and ``raw()``; return their results in that order.

    The agent goes first on even repetitions and second on odd ones, so
    neither side always finds the page cache, QEMU or the OSD warmed up
    by the other.
    """
    if repetition % 2:
        raw_result = raw()
        return agent(), raw_result
    agent_result = agent()
    return agent_result, raw()


def restore_and_delete(case, agent, raw, indexes):
    """Restore, then delete, every snapshot with both sides.

    ``indexes[0]`` is the warm-up: its restore is not counted and it is
    deleted last, not counted either, as deleting an instance's last
    snapshot also does one-time work (dropping the store's copy of the
    bases, removing the agent's RBD group).
    """
    for repetition, index in enumerate(indexes):
        mine, theirs = in_turn(
            repetition,
            functools.partial(agent.restore, index),
            functools.partial(raw.restore, index),
        )
        if repetition:
            case.add(RESTORE, mine, theirs)
    for repetition, index in enumerate(indexes[1:] + indexes[:1], 1):
        mine, theirs = in_turn(
            repetition,
            functools.partial(agent.delete, index),
            functools.partial(raw.delete, index),
        )
        if index != indexes[0]:
            case.add(DELETE, mine, theirs)


def p90(values):
    """The 90th percentile, interpolated between the closest samples."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=10, method="inclusive")[-1]


class Case:
    """The samples of one backend and disk count, in seconds."""

    def __init__(self, title):
        self.title = title
        self.agent = {}
        self.raw = {}
        self.notes = []

    def add(self, row, agent=None, raw=None):
        """Record one repetition of ``row``; None where a side has none."""
        if agent is not None:
            self.agent.setdefault(row, []).append(agent)
        if raw is not None:
            self.raw.setdefault(row, []).append(raw)

    def table(self):
        """The case as lines of text: milliseconds, and agent / raw."""
        rows = []
        for row in ROWS:
            agent, raw = self.agent.get(row), self.raw.get(row)
            if not agent and not raw:
                continue
            rows.append(
                [
                    row,
                    ms(statistics.median(agent) if agent else None),
                    ms(p90(agent) if agent else None),
                    ms(statistics.median(raw) if raw else None),
                    ms(p90(raw) if raw else None),
                    _ratio(agent, raw),
                ]
            )
        return table(self.title, ("op",) + _COLUMNS, rows, self.notes)


def table(title, header, rows, notes=()):
    """Lines of text: ``title``, then ``header`` and each row of cells
    (strings), the first column left-aligned, the others right-aligned;
    then each note, indented."""

    def line(cells):
        first, *rest = cells
        return f"{first:{_FIRST}}" + "".join(f"{c:>{_WIDTH}}" for c in rest)

    return [title, line(header), *map(line, rows)] + [
        f"  {note}" for note in notes
    ]


def show(lines):
    """Print a table (or any lines) and a blank line, at once."""
    print("\n".join(lines), end="\n\n", flush=True)


def ratio(value, baseline):
    """``value / baseline`` as a cell; "-" when there is no baseline."""
    if value is None or not baseline or baseline <= 0:
        return "-"
    return f"{value / baseline:.2f}"


def ms(seconds):
    """Seconds as a cell in milliseconds; "-" for None."""
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


def _ratio(agent, raw):
    if not agent or not raw:
        return "-"
    return ratio(statistics.median(agent), statistics.median(raw))
