"""One size of the planning benchmark, in a process of its own.

``python -m benchmarks.conductor.tick_child`` reads its task as a line
of JSON on stdin (the database URL, which holds a password, stays out of
the process list), answers with its RSS once set up, then does one tick
per line it reads (``{"kind": ..., "count": ...}``), answering each with
the tick's time, until ``{"done": true}``, answered with its peak RSS.
A ``{"kind": "window", ...}`` line is a busy window instead: the parent
has made schedules due at ``now``; the child ticks as a conductor does
(``[conductor] claim_batch_size`` as given, batch after batch within
each tick) until a tick finds nothing, and answers with the time to its
last cast and the ids of the snapshots it cast, so that the parent can
check that two children ticking at once cast each snapshot once.
A process per size, so that its peak RSS is the conductor's for that many
instances and nothing else: it imports what snapmanager-conductor
imports, builds the clock with a compute API that only counts casts, and
ticks.

Every tick runs at a ``now`` one day later than the one before, so each
takes a new window. Before a tick, the schedules it is to find due are
given a ``next_run_at`` just before that ``now``, chosen at random by
MariaDB (untimed); after it, whatever the tick advanced is put back to
the far future, so that no other schedule is ever due.
"""

import datetime
import json
import sys
import time

import sqlalchemy as sa

from benchmarks.compute import report
from snapmanager_nova import context as sm_context
from snapmanager_nova.cmd import conductor as _conductor  # noqa: F401
from snapmanager_nova.conductor import clock as clock_mod
from snapmanager_nova.db import models
from tests.unit.db import fixtures as db_fixtures

# Cases: what is due at the tick.
IDLE = "idle"  # nothing
OWN = "own"  # ``count`` instances' own schedules
DEFAULT = "default"  # the project default schedule
WINDOW = "window"  # a busy window, ticked until nothing is due
COMPUTE = "snapmanager-compute"

_MARK_OWN = sa.text(
    "UPDATE schedules SET next_run_at = :due "
    "WHERE is_project_default = 0 ORDER BY RAND(:seed) LIMIT :count"
)
_MARK_DEFAULT = sa.text(
    "UPDATE schedules SET next_run_at = :due WHERE is_project_default = 1"
)
# The clock casts only to agents that heartbeat (in real time, whatever
# clock drives the schedules); the rows of the hosts are kept fresh.
_HEARTBEAT = sa.text(
    "UPDATE services SET last_seen_at = :now WHERE `binary` = :binary"
)
_RESET = sa.text(
    "UPDATE schedules SET next_run_at = :far "
    "WHERE enabled = 1 AND next_run_at < :far"
)


class CastCounter:
    """A compute API that counts the clock's casts and sends nothing;
    while ``ids`` is a list, it records the snapshots cast, and ``last``
    the time of the last cast."""

    def __init__(self):
        self.casts = 0
        self.messages = 0
        self.ids = None
        self.last = None

    def create_snapshot(
        self, context, host, instance_uuid, snapshot_id, index, quiesce
    ):
        self.messages += 1
        self._cast([snapshot_id])

    def create_snapshots(self, context, host, snapshots):
        self.messages += 1
        self._cast([item["snapshot_id"] for item in snapshots])

    def _cast(self, snapshot_ids):
        self.casts += len(snapshot_ids)
        if self.ids is not None:
            self.ids.extend(snapshot_ids)
        self.last = time.monotonic()


def _proc_status_kib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _naive(moment):
    return moment.astimezone(datetime.UTC).replace(tzinfo=None)


class Ticker:
    def __init__(self, engine, base, far, default_targets):
        self.engine = engine
        self.base = base
        self.far = _naive(far)
        self.default_targets = default_targets
        self.ticks = 0
        self.counter = CastCounter()
        self.now = base
        self.clock = clock_mod.ScheduleClock(
            self.counter, now=lambda: self.now
        )
        self.context = sm_context.get_admin_context()

    def tick(self, kind, count):
        """Seconds of one tick with ``kind`` due; checks what it did."""
        self.ticks += 1
        self.now = self.base + datetime.timedelta(days=self.ticks)
        due = _naive(self.now - datetime.timedelta(hours=1))
        expected = 0
        with self.engine.begin() as conn:
            conn.execute(
                _HEARTBEAT,
                {"now": _naive(models.utcnow()), "binary": COMPUTE},
            )
            if kind == OWN:
                conn.execute(
                    _MARK_OWN, {"due": due, "seed": self.ticks, "count": count}
                )
                expected = count
            elif kind == DEFAULT:
                conn.execute(_MARK_DEFAULT, {"due": due})
                expected = self.default_targets
        casts = self.counter.casts
        seconds, dispatches = report.timed(self.clock.tick, self.context)
        with self.engine.begin() as conn:
            conn.execute(_RESET, {"far": self.far})
        if len(dispatches) != expected or (
            self.counter.casts - casts != expected
        ):
            raise RuntimeError(
                f"a tick with {kind} {count} due recorded "
                f"{len(dispatches)} snapshots and cast "
                f"{self.counter.casts - casts}, expected {expected}"
            )
        return seconds

    def window(self, message):
        """Tick at ``now`` until a tick finds nothing; what it cast."""
        self.now = datetime.datetime.fromisoformat(message["now"])
        conf = clock_mod.CONF.conductor
        batch = conf.claim_batch_size
        clock_mod.CONF.set_override(
            "claim_batch_size", message["claim_batch_size"], group="conductor"
        )
        self.counter.ids = []
        messages = self.counter.messages
        started = time.monotonic()
        claimed = ticks = 0
        try:
            while True:
                ticks += 1
                dispatches = self.clock.tick(self.context)
                claimed += len(dispatches)
                if not dispatches:
                    break
        finally:
            clock_mod.CONF.set_override(
                "claim_batch_size", batch, group="conductor"
            )
        ids, self.counter.ids = self.counter.ids, None
        return {
            "seconds": time.monotonic() - started,
            "last_cast": (self.counter.last or started) - started,
            "claimed": claimed,
            "ticks": ticks,
            "messages": self.counter.messages - messages,
            "ids": ids,
        }


def _reply(message):
    print(json.dumps(message), flush=True)


def main():
    task = json.loads(sys.stdin.readline())
    base = datetime.datetime.fromisoformat(task["base"])
    far = datetime.datetime.fromisoformat(task["far"])
    # Every tick adds snapshot rows to the same projects: no limit, or
    # a project would be refused after its 100th (the quota's check,
    # reading the limits and the usage, still runs).
    clock_mod.CONF.set_override("snapshots", -1, group="quota")
    # One tick is to take all that is due, however many that is.
    clock_mod.CONF.set_override(
        "claim_batch_size", task["claim_batch_size"], group="conductor"
    )
    with db_fixtures.database(task["url"]) as engine:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        _reply({"rss_start_kib": _proc_status_kib("VmRSS")})
        ticker = Ticker(engine, base, far, task["default_targets"])
        for line in sys.stdin:
            message = json.loads(line)
            if message.get("done"):
                break
            if message["kind"] == WINDOW:
                _reply(ticker.window(message))
                continue
            seconds = ticker.tick(message["kind"], message.get("count", 0))
            _reply({"seconds": seconds})
    _reply({"peak_kib": _proc_status_kib("VmHWM")})


if __name__ == "__main__":
    main()
