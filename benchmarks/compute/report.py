"""Timing helpers, the order of the measurements, and the tables."""

import functools
import statistics
import time

# Rows of every table, in this order; a case prints those it measured.
SNAPSHOT = "snapshot"
RESTORE = "restore"
DELETE = "delete"
PAUSE = "pause"
XML_WINDOW = "XML window"
ROWS = (SNAPSHOT, RESTORE, DELETE, PAUSE, XML_WINDOW)

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
        lines = [
            self.title,
            f"{'op':{_FIRST}}" + "".join(f"{c:>{_WIDTH}}" for c in _COLUMNS),
        ]
        for row in ROWS:
            agent, raw = self.agent.get(row), self.raw.get(row)
            if not agent and not raw:
                continue
            cells = [
                _ms(statistics.median(agent) if agent else None),
                _ms(p90(agent) if agent else None),
                _ms(statistics.median(raw) if raw else None),
                _ms(p90(raw) if raw else None),
                _ratio(agent, raw),
            ]
            lines.append(
                f"{row:{_FIRST}}" + "".join(f"{c:>{_WIDTH}}" for c in cells)
            )
        lines.extend(f"  {note}" for note in self.notes)
        return lines


def _ms(seconds):
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


def _ratio(agent, raw):
    if not agent or not raw:
        return "-"
    baseline = statistics.median(raw)
    if baseline <= 0:
        return "-"
    return f"{statistics.median(agent) / baseline:.2f}"
