"""Planning cost per tick: the schedule clock against database size.

For each size, a database of its own on the test MariaDB gets that many
instances, in projects of :data:`PROJECT_SIZE`, every one switched on
for snapshots: all but the last project's have a schedule of their own,
the last project has a project default schedule instead (its instances
have none of their own). Every ``next_run_at`` is far in the future.

A child process per size (:mod:`.tick_child`) then times
``ScheduleClock.tick`` with a compute API that only counts casts, so
what is measured is the conductor's planning: the claim, the windows,
the snapshot rows, the advanced schedules. Cases: nothing due; 100
instance schedules due; the project default due (100 instances); and,
at 10,000 instances, 10 and 1,000 instance schedules due, to show the
cost following what is due.

A busy window, at the largest size: :data:`WINDOW_DUE` instance
schedules due at the same moment ("daily at 02:00"), claimed by one
conductor ticking as snapmanager-conductor does (``claim_batch_size``
200, a tick claiming batch after batch), then the same by two
conductors at once; each is checked to record and cast every snapshot
once, and the time from the tick's start to its last cast is reported
with the claims per second.
"""

import contextlib
import datetime
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import sqlalchemy as sa

from benchmarks.compute import report
from benchmarks.conductor import rows
from benchmarks.conductor import tick_child
from snapmanager_nova import schedule as schedule_engine
from snapmanager_nova.db import models
from tests.fixtures import testenv as testenv_fixtures

PROJECT_SIZE = 100
HOSTS = [f"bench-compute-{i:03d}" for i in range(100)]
BASELINE_SIZE = 1000
# Where due counts other than 100 are measured too.
SCALING_SIZE = 10000
DUE = 100
SCALING_DUE = (10, 1000)
# The busy window: schedules due at once, claimed as a conductor does.
WINDOW_DUE = 10000
WINDOW_CLAIM_BATCH = 200
# Its "now": far from the days the ticks of the other cases take.
WINDOW_DAY = 10000
UTC = datetime.UTC
# The first tick's "now"; every later tick is one day later.
BASE = datetime.datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
FAR = datetime.datetime(2999, 1, 1, tzinfo=UTC)
ROOT = pathlib.Path(__file__).resolve().parents[2]

IDLE_CASE = "nothing due"
OWN_CASE = f"{DUE} instance schedules due"
DEFAULT_CASE = f"a project default due ({PROJECT_SIZE} instances)"


class ChildFailed(Exception):
    pass


def _cases(size):
    cases = [
        {"name": IDLE_CASE, "kind": tick_child.IDLE},
        {"name": DEFAULT_CASE, "kind": tick_child.DEFAULT},
        {"name": OWN_CASE, "kind": tick_child.OWN, "count": DUE},
    ]
    if size == SCALING_SIZE:
        cases.extend(
            {"name": f"due {count}", "kind": tick_child.OWN, "count": count}
            for count in SCALING_DUE
        )
    return cases


def fill(url, size):
    """Create the schema and ``size`` instances with their policies;
    return the database's size in bytes (data and indexes)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        models.Base.metadata.create_all(engine)
        projects = size // PROJECT_SIZE
        instances = [
            rows.instance(
                f"bench-project-{i // PROJECT_SIZE:05d}",
                HOSTS[i % len(HOSTS)],
                "ACTIVE",
                i,
            )
            for i in range(size)
        ]
        default_project = f"bench-project-{projects - 1:05d}"
        schedules = [
            rows.own_schedule(row, FAR)
            for row in instances
            if row["project_id"] != default_project
        ]
        schedules.append(rows.project_default(default_project, FAR))
        rows.insert(engine, models.Instance, instances)
        rows.insert(engine, models.Schedule, schedules)
        rows.insert(
            engine,
            models.Service,
            [rows.service(tick_child.COMPUTE, host) for host in HOSTS],
        )
        with engine.connect() as conn:
            # Statistics as a database that has lived with its rows would
            # have them, for the optimizer and for the size below.
            conn.execute(sa.text("ANALYZE TABLE instances, schedules"))
            return conn.execute(
                sa.text(
                    "SELECT SUM(data_length + index_length) "
                    "FROM information_schema.tables "
                    "WHERE table_schema = DATABASE()"
                )
            ).scalar_one()
    finally:
        engine.dispose()


class Child:
    """A :mod:`.tick_child` process for one database size."""

    def __init__(self, url, size):
        self.size = size
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.conductor.tick_child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            cwd=ROOT,
        )
        self.rss_start_kib = self._ask(
            {
                "url": url,
                "base": BASE.isoformat(),
                "far": FAR.isoformat(),
                "default_targets": PROJECT_SIZE,
                # [conductor] claim_batch_size (200 by default) caps what
                # one tick claims; here one tick takes the largest due
                # count in one go.
                "claim_batch_size": max(SCALING_DUE + (DUE,)),
            }
        )["rss_start_kib"]

    def _ask(self, message):
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        except BrokenPipeError:
            line = ""
        if not line:
            self.process.wait(timeout=60)
            self.stderr.seek(0)
            raise ChildFailed(
                f"the planning child for {self.size:,} instances failed "
                f"(exit {self.process.returncode}):\n"
                f"{self.stderr.read()[-4000:]}"
            )
        return json.loads(line)

    def tick(self, case):
        return self._ask(case)["seconds"]

    def send(self, message):
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def receive(self):
        line = self.process.stdout.readline()
        if not line:
            return self._ask({"done": True})  # says why it failed
        return json.loads(line)

    def finish(self):
        """The child's peak RSS in KiB; it exits."""
        peak = self._ask({"done": True})["peak_kib"]
        self.process.wait(timeout=60)
        return peak

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.stderr.close()


_MARK_WINDOW = sa.text(
    "UPDATE schedules SET next_run_at = :due "
    "WHERE is_project_default = 0 ORDER BY RAND(:seed) LIMIT :count"
)
_WINDOW_ROWS = sa.text(
    "SELECT COUNT(*), COUNT(DISTINCT instance_uuid) FROM snapshots "
    "WHERE window_start = :window"
)


def _window(url, children, count, rounds):
    """One busy window per entry of ``children`` (lists of children that
    tick at once); their results."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    results = []
    try:
        for number, ticking in enumerate(children):
            now = BASE + datetime.timedelta(days=WINDOW_DAY + rounds + number)
            window = schedule_engine.parse_spec(
                rows.SPEC, rows.TIMEZONE
            ).previous_run(now)
            with engine.begin() as conn:
                conn.execute(
                    tick_child._HEARTBEAT,
                    {
                        "now": tick_child._naive(models.utcnow()),
                        "binary": tick_child.COMPUTE,
                    },
                )
                conn.execute(
                    _MARK_WINDOW,
                    {
                        "due": tick_child._naive(
                            now - datetime.timedelta(minutes=1)
                        ),
                        "seed": number,
                        "count": count,
                    },
                )
            message = {
                "kind": tick_child.WINDOW,
                "now": now.isoformat(),
                "claim_batch_size": WINDOW_CLAIM_BATCH,
            }
            for child in ticking:
                child.send(message)
            answers = [child.receive() for child in ticking]
            with engine.begin() as conn:
                conn.execute(
                    tick_child._RESET, {"far": tick_child._naive(FAR)}
                )
                recorded, instances = conn.execute(
                    _WINDOW_ROWS, {"window": tick_child._naive(window)}
                ).one()
            ids = [i for answer in answers for i in answer.pop("ids")]
            if not (
                len(ids) == len(set(ids)) == recorded == instances == count
            ):
                raise ChildFailed(
                    f"a window of {count:,} due with {len(ticking)} "
                    f"conductor(s): {len(ids):,} casts of "
                    f"{len(set(ids)):,} snapshots, {recorded:,} rows of "
                    f"{instances:,} instances"
                )
            results.append(answers)
    finally:
        engine.dispose()
    return results


def run(mariadb, sizes, repeat, window=WINDOW_DUE):
    """Measure every size; return the tables (lists of lines).

    Every size's database is filled and its child started first; then
    the ticks of each case go round the sizes, in an order that turns
    by one each round, so that load from outside the benchmark that
    comes and goes falls on every size alike.
    """
    for size in sizes:
        if size % PROJECT_SIZE or size < 2 * PROJECT_SIZE:
            raise ValueError(f"sizes are multiples of {PROJECT_SIZE}")
    results = {size: {"seconds": {}} for size in sizes}
    fill_seconds = {}
    window_results = None
    with contextlib.ExitStack() as stack:
        children = {}
        urls = {}
        for size in sizes:
            url = stack.enter_context(testenv_fixtures.new_database(mariadb))
            urls[size] = url
            started = time.monotonic()
            results[size]["bytes"] = fill(url, size)
            fill_seconds[size] = time.monotonic() - started
            children[size] = Child(url, size)
            stack.callback(children[size].close)
        for size in sizes:
            for case in _cases(size):
                results[size]["seconds"][case["name"]] = []
        # The first round is a warm-up: SQLAlchemy compiles and caches
        # its statements, the pool opens its connection.
        for case in _cases(SCALING_SIZE):
            measured = [s for s in sizes if case in _cases(s)]
            if not measured:
                continue
            for round_ in range(repeat + 1):
                turn = round_ % len(measured)
                for size in measured[turn:] + measured[:turn]:
                    seconds = children[size].tick(case)
                    if round_:
                        results[size]["seconds"][case["name"]].append(seconds)
        largest = max(sizes)
        window = min(window, largest - PROJECT_SIZE)
        if window > 0:
            second = Child(urls[largest], largest)
            stack.callback(second.close)
            first = children[largest]
            window_results = _window(
                urls[largest], [[first], [first, second]], window, repeat
            )
        for size, child in children.items():
            results[size]["rss_start_kib"] = child.rss_start_kib
            results[size]["peak_kib"] = child.finish()
    tables = _tables(
        sizes, results, fill_seconds, repeat, _buffer_pool_bytes(mariadb)
    )
    if window_results:
        tables.append(_window_table(largest, window, window_results))
    return tables


def _window_table(size, count, results):
    lines = []
    for answers in results:
        for number, answer in enumerate(answers, 1):
            last = answer["last_cast"]
            lines.append(
                [
                    f"{number} of {len(answers)}",
                    f"{answer['claimed']:,}",
                    f"{last:.2f}",
                    f"{answer['claimed'] / last:,.0f}" if last > 0 else "-",
                    f"{answer['ticks'] - 1}",
                    f"{answer['messages']:,}",
                ]
            )
    return report.table(
        f"a busy window: {count:,} instance schedules due at once, "
        f"{size:,} instances",
        ("conductor", "claimed", "s to last", "claims/s", "ticks", "casts"),
        lines,
        [
            "conductor: n of how many ticked at once; claimed: snapshots "
            "it recorded and cast (every one of the window once in all, "
            "checked against the rows); s to last: from the start of its "
            "tick to its last cast (a tick starts within [conductor] "
            "tick_interval of the window's start); ticks: ticks that found "
            "work (not the last, empty one)",
            f"claim_batch_size {WINDOW_CLAIM_BATCH} (the default); casts: "
            f"messages to the agents ({len(HOSTS)} hosts), counted, not sent",
            "the peak memory of the largest size above includes its window",
        ],
    )


def _buffer_pool_bytes(mariadb):
    engine = sa.create_engine(mariadb["url"], poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text("SELECT @@innodb_buffer_pool_size")
                ).scalar_one()
            )
    finally:
        engine.dispose()


def _tables(sizes, results, fill_seconds, repeat, buffer_pool):
    baseline_size = BASELINE_SIZE if BASELINE_SIZE in sizes else sizes[0]
    header = ("instances", "med ms", "p90 ms", "ratio")
    tables = []
    for case in (IDLE_CASE, OWN_CASE, DEFAULT_CASE):
        baseline = _median(results[baseline_size], case)
        lines = []
        for size in sizes:
            samples = results[size]["seconds"][case]
            lines.append(
                [
                    f"{size:,}",
                    report.ms(_median(results[size], case)),
                    report.ms(report.p90(samples)),
                    report.ratio(_median(results[size], case), baseline),
                ]
            )
        tables.append(report.table(f"tick, {case}", header, lines))
    peak_baseline = results[baseline_size]["peak_kib"]
    tables.append(
        report.table(
            "conductor memory (MiB)",
            ("instances", "RSS before", "peak", "ratio"),
            [
                [
                    f"{size:,}",
                    _mib(results[size]["rss_start_kib"]),
                    _mib(results[size]["peak_kib"]),
                    report.ratio(results[size]["peak_kib"], peak_baseline),
                ]
                for size in sizes
            ],
            [
                "RSS before: after the imports of snapmanager-conductor and "
                "the first query; peak: VmHWM after every tick",
                "rows inserted in "
                + ", ".join(
                    f"{fill_seconds[size]:.1f} s ({size:,})" for size in sizes
                ),
                "database size (data and indexes): "
                + ", ".join(
                    f"{_mib(results[size]['bytes'] / 1024)} MiB ({size:,})"
                    for size in sizes
                )
                + f"; InnoDB buffer pool {_mib(buffer_pool / 1024)} MiB",
            ],
        )
    )
    if SCALING_SIZE in sizes:
        scaling = results[SCALING_SIZE]
        baseline = _median(scaling, OWN_CASE)
        lines = []
        for count, case in sorted(
            [(DUE, OWN_CASE)]
            + [(count, f"due {count}") for count in SCALING_DUE]
        ):
            median = _median(scaling, case)
            lines.append(
                [
                    f"{count:,}",
                    report.ms(median),
                    report.ms(report.p90(scaling["seconds"][case])),
                    f"{median * 1000 / count:.2f}",
                    report.ratio(median, baseline),
                ]
            )
        tables.append(
            report.table(
                f"tick at {SCALING_SIZE:,} instances, instance schedules due",
                ("due", "med ms", "p90 ms", "ms per due", "ratio"),
                lines,
                [f"ratio = median / median with {DUE} due"],
            )
        )
    tables[0][0:0] = [
        f"planning: one ScheduleClock.tick on MariaDB, casts counted, no "
        f"agents; {repeat} timed ticks per case after a warm-up round",
        f"ratio = median / median at {baseline_size:,} instances "
        f"(projects of {PROJECT_SIZE}, one with a default schedule, the "
        "others' instances with their own)",
        "",
    ]
    return tables


def _median(result, case):
    return statistics.median(result["seconds"][case])


def _mib(kib):
    return f"{kib / 1024:.1f}"
