"""One size of the planning benchmark, in a process of its own.

``python -m benchmarks.conductor.tick_child`` reads its task as a line
of JSON on stdin (the database URL, which holds a password, stays out of
the process list), answers with its RSS once set up, then does one tick
per line it reads (``{"kind": ..., "count": ...}``), answering each with
the tick's time, until ``{"done": true}``, answered with its peak RSS.
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
    """A compute API that counts the clock's casts and sends nothing."""

    def __init__(self):
        self.casts = 0

    def create_snapshot(
        self, context, host, instance_uuid, snapshot_id, index, quiesce
    ):
        self.casts += 1


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


def _reply(message):
    print(json.dumps(message), flush=True)


def main():
    task = json.loads(sys.stdin.readline())
    base = datetime.datetime.fromisoformat(task["base"])
    far = datetime.datetime.fromisoformat(task["far"])
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
            seconds = ticker.tick(message["kind"], message.get("count", 0))
            _reply({"seconds": seconds})
    _reply({"peak_kib": _proc_status_kib("VmHWM")})


if __name__ == "__main__":
    main()
