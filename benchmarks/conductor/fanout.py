"""RBD fan-out: N instances due in one window, end to end.

snapmanager-conductor and snapmanager-compute run as real processes
(tests/fixtures/services.py) on the test RabbitMQ and a MariaDB database
of this run's own, the agent with the RBD backend only. For each N:

* N Nova-like instances (tests/functional/compute/rbd_helpers): one
  small image ``<uuid>_disk`` each in the test pool, and a domain defined
  with Nova's RBD disk XML and left shut off, so the agent snapshots
  without a freeze; each instance's row names the agent's host, and has
  a schedule of its own, not due (``next_run_at`` NULL).
* **agent**: one UPDATE makes all N schedules due at once; the
  conductor's clock (ticking every second) claims them in one tick,
  records N ``creating`` rows and casts N snapshots to the agent, which
  finds each one's disks on :data:`RAW_THREADS` ``[compute] workers``
  and takes them ``[compute] snapshot_workers`` at a time (its default,
  :data:`AGENT_IN_FLIGHT`), and reports each to the conductor, which
  records it ``available``. The time is from the tick (the first
  schedule the tick advanced, ``schedules.updated_at``) to the last
  ``completed_at``, both written by the conductor.
* **loop**: ``create_snap`` on each of the same images in turn, through
  a Ceph connection of this process: the bare storage work.
* **8 threads**: the same open, ``create_snap`` and close on
  :data:`RAW_THREADS` threads sharing that connection: the storage work
  with as much parallelism as a plain script would use.
* **16 threads**: the same on :data:`AGENT_IN_FLIGHT` threads, as many
  snapshots in flight as the agent has: what the agent's own work
  around each snapshot costs, with the parallelism the same.

The agent and the loops take turns going first from one N to the next,
and each of the four starts on an idle machine (:data:`QUIET_CPU`).
A first, untimed round of :data:`WARM_UP` instances warms both sides
up: the agent's first snapshot opens its Ceph pool and libvirt
connection and the conductor's first cast its RabbitMQ connection,
which would otherwise count in the first size's first run.
The services talk on a RabbitMQ vhost of this run's own (see
:func:`benchmarks.common.private_vhost`). Everything is removed
afterwards, also on failure: snapshots, images, domains, the libvirt
secret, the vhost, the database and the services' directory.
"""

import concurrent.futures
import contextlib
import datetime
import itertools
import os
import pathlib
import shlex
import shutil
import statistics
import sys
import tempfile
import time
import uuid

import libvirt
import rbd
import sqlalchemy as sa

from benchmarks import common
from benchmarks.compute import report
from benchmarks.conductor import rows
from snapmanager_nova import conf as sm_conf
from snapmanager_nova import context as sm_context
from snapmanager_nova.db import api as db_api
from snapmanager_nova.db import models
from tests.fixtures import services
from tests.fixtures import testenv as testenv_fixtures
from tests.functional.compute import rbd_helpers
from tests.unit.db import fixtures as db_fixtures

CONF = sm_conf.CONF
MiB = rbd_helpers.MiB
IMAGE_SIZE = 4 * MiB
RAW_SNAP = "bench-raw"
RAW_THREADS = 8
# The agent's snapshots in flight: [compute] snapshot_workers' default.
AGENT_IN_FLIGHT = CONF.compute.snapshot_workers
# The threaded loops: their CPU notes' and columns' names.
THREADED = {
    threads: f"{threads} threads" for threads in (RAW_THREADS, AGENT_IN_FLIGHT)
}
# Instances of the untimed first round.
WARM_UP = RAW_THREADS
# Snapshots each image holds at the end: the agent's and the loops'.
SNAPSHOTS_EACH = 2 + len(THREADED)
# Threads that create and remove the images and domains (setup and
# cleanup, never timed against anything).
SETUP_THREADS = 8
# What the agent says of a snapshot another agent removed meanwhile.
MISSING = "missing right after creation"
DISTURBED = (
    "Every snapmanager-compute that starts on the test environment's "
    "libvirtd recovers all the RBD domains there, this run's too, and "
    "discards the snapshots it finds in flight: was another test set-up "
    "starting an agent? Run the fan-out on a quiet test environment."
)
CONDUCTOR = "snapmanager-conductor"
COMPUTE = "snapmanager-compute"
# Each timed part starts on an idle machine: Ceph's daemons and the
# services together used at most QUIET_CPU CPU seconds in the last
# QUIET_SPAN seconds. The OSD trims the snapshots of a removed fleet
# for a while after the removal returns, and the agent measures its
# snapshots' sizes once it has had nothing else to do for 2 s; either
# would otherwise count in whichever part it overlaps. Waited for at
# most QUIET_TIMEOUT seconds, then the part runs all the same and the
# note says so.
QUIET_SPAN = 1.0
QUIET_CPU = 0.05
QUIET_TIMEOUT = 120


class FanoutError(Exception):
    pass


def _parallel(func, items):
    """``func(item)`` for every item on a few threads; results in order.

    Every item is tried; the first error is raised after all are done,
    so a failure in cleanup does not leave the rest behind.
    """
    with concurrent.futures.ThreadPoolExecutor(SETUP_THREADS) as pool:
        futures = [pool.submit(func, item) for item in items]
    errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        raise errors[0]
    return [f.result() for f in futures]


class Services:
    """The conductor and the agent, on a database of their own."""

    def __init__(
        self, stack, mariadb, rabbitmq, libvirt_info, ceph, batch, profile
    ):
        url = stack.enter_context(testenv_fixtures.new_database(mariadb))
        transport_url = stack.enter_context(common.private_vhost(rabbitmq))
        directory = pathlib.Path(tempfile.mkdtemp(prefix="snapmanager-fan-"))
        stack.callback(shutil.rmtree, directory, ignore_errors=True)
        self.env = services.SnapmanagerEnv(directory, url, transport_url)
        self.env.write_config(
            {
                "compute": {
                    "libvirt_uri": libvirt_info["uri"],
                    "instances_path": str(directory / "instances"),
                    "snapshot_store_path": str(directory / "snapshots"),
                    "backends": "rbd",
                    # Lookups on as many threads as the 8-thread loop;
                    # the snapshots on AGENT_IN_FLIGHT, the default.
                    "workers": str(RAW_THREADS),
                },
                "rbd": {
                    "ceph_conf": ceph["conf"],
                    "rbd_user": ceph["user"],
                    "pool": ceph["pool"],
                    "rados_op_timeout": "30",
                },
                # One project holds every instance of the fleet.
                "quota": {"snapshots": "-1"},
                "conductor": {
                    "tick_interval": "1",
                    # One tick claims the whole window (200 by default).
                    "claim_batch_size": str(batch),
                    # There is no Nova here to hear from.
                    "listen_notifications": "false",
                },
            }
        )
        (directory / "instances").mkdir()
        try:
            self.env.manage("db", "sync")
        except Exception as exc:
            raise FanoutError(
                f"snapmanager-manage db sync failed: {exc}\n"
                + getattr(exc, "stderr", "")
            ) from exc
        self.engine = stack.enter_context(db_fixtures.database(url))
        stack.callback(self.env.stop_all)
        if profile is not None:
            stack.enter_context(_profiled(directory, profile))
        self.host = services.unique_host("bench-compute")
        # The conductor first, then the agent: the order of the CPU columns.
        wanted = [
            (CONDUCTOR, services.unique_host("bench-conductor")),
            (COMPUTE, self.host),
        ]
        self.processes = [
            self.env.start(binary, host) for binary, host in wanted
        ]

        def registered():
            context = sm_context.get_admin_context()
            return set(wanted) <= {
                (service.binary, service.host)
                for service in db_api.service_list(context)
            }

        self.wait_until(registered, 60, "the services' heartbeats")

    def check_alive(self):
        for process in self.processes:
            if process.poll() is not None:
                raise FanoutError(
                    f"{pathlib.Path(process.args[0]).name} exited with "
                    f"{process.returncode}:\n{self.env.log_tails()}"
                )

    def wait_until(self, predicate, timeout, what, interval=0.1):
        def check():
            self.check_alive()
            return predicate()

        try:
            return services.wait_until(check, timeout, interval, what)
        except AssertionError as exc:
            raise FanoutError(f"{exc}\n{self.env.log_tails()}") from None


class Fleet:
    """N Nova-like RBD instances of one size, and their rows."""

    def __init__(self, size, conn, ioctx, ceph, secret_uuid, prefix):
        self.size = size
        self.conn = conn
        self.ioctx = ioctx
        self.ceph = ceph
        self.secret_uuid = secret_uuid
        self.prefix = prefix
        self.project_id = f"bench-fanout-{uuid.uuid4().hex[:8]}"
        self.layouts = []
        self.domains = []
        self.times = {}
        # CPU seconds used during each run ("agent", "loop", "8
        # threads"): see _cpu_of.
        self.cpu = {}

    def create(self):
        started = time.monotonic()
        _parallel(self._make_layout, range(self.size))
        self.times["images created"] = time.monotonic() - started
        started = time.monotonic()
        _parallel(self._define, list(self.layouts))
        self.times["domains defined"] = time.monotonic() - started

    def _make_layout(self, index):
        layout = rbd_helpers.make_layout(
            self.ioctx,
            self.ceph,
            self.secret_uuid,
            f"{self.prefix}fan-{self.project_id[-8:]}-{index:04d}",
            size=IMAGE_SIZE,
        )
        self.layouts.append(layout)  # list.append is atomic

    def _define(self, layout):
        self.domains.append(self.conn.defineXML(layout.xml))

    def remove(self):
        """Undefine the domains, then remove images and snapshots."""
        started = time.monotonic()
        try:
            _parallel(
                lambda dom: dom.undefineFlags(
                    libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
                ),
                self.domains,
            )
        finally:
            self.times["domains undefined"] = time.monotonic() - started
            started = time.monotonic()
            _parallel(
                lambda layout: common.remove_rbd_instance(
                    self.ioctx, layout.uuid
                ),
                self.layouts,
            )
            self.times["images removed"] = time.monotonic() - started

    def images(self):
        return [layout.image() for layout in self.layouts]


def _insert_rows(engine, fleet, host):
    instances = [
        dict(
            rows.instance(fleet.project_id, host, "SHUTOFF", index),
            uuid=layout.uuid,
        )
        for index, layout in enumerate(fleet.layouts)
    ]
    rows.insert(engine, models.Instance, instances)
    rows.insert(
        engine,
        models.Schedule,
        [rows.own_schedule(row, None) for row in instances],
    )


def _make_due(engine, project_id):
    schedules = models.Schedule.__table__
    with engine.begin() as conn:
        conn.execute(
            schedules.update()
            .where(schedules.c.project_id == project_id)
            # updated_at cleared: the tick's own update sets it again,
            # which dates the tick.
            .values(next_run_at=models.utcnow(), updated_at=None)
        )


def _disable(engine, project_id):
    schedules = models.Schedule.__table__
    with engine.begin() as conn:
        conn.execute(
            schedules.update()
            .where(schedules.c.project_id == project_id)
            .values(enabled=False)
        )


def _statuses(engine, project_id):
    snapshots = models.Snapshot.__table__
    with engine.connect() as conn:
        return dict(
            conn.execute(
                sa.select(snapshots.c.status, sa.func.count())
                .where(snapshots.c.project_id == project_id)
                .group_by(snapshots.c.status)
            ).all()
        )


def _errors(engine, project_id, limit=3):
    snapshots = models.Snapshot.__table__
    with engine.connect() as conn:
        return conn.execute(
            sa.select(snapshots.c.instance_uuid, snapshots.c.error)
            .where(
                snapshots.c.project_id == project_id,
                snapshots.c.status == models.SNAPSHOT_ERROR,
            )
            .limit(limit)
        ).all()


def _utc(value):
    return value.replace(tzinfo=datetime.UTC)


def _timeline(engine, project_id):
    """(tick start, last row recorded, last row available), aware UTC."""
    schedules = models.Schedule.__table__
    snapshots = models.Snapshot.__table__
    with engine.connect() as conn:
        tick = conn.execute(
            sa.select(sa.func.min(schedules.c.updated_at)).where(
                schedules.c.project_id == project_id
            )
        ).scalar_one()
        recorded, done = conn.execute(
            sa.select(
                sa.func.max(snapshots.c.created_at),
                sa.func.max(snapshots.c.completed_at),
            ).where(snapshots.c.project_id == project_id)
        ).one()
    return _utc(tick), _utc(recorded), _utc(done)


def _cpu_seconds(pid):
    """User and system CPU time process ``pid`` has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        # After the command name, which may contain spaces.
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# The daemons every run uses, by the name the CPU note gives them.
DAEMONS = {
    "ceph-mon": "Ceph mon",
    "ceph-osd": "Ceph OSD",
    "ceph-mgr": "Ceph mgr",
    "mariadbd": "MariaDB",
    "mysqld": "MariaDB",
    "beam.smp": "RabbitMQ",
    # The agent's lookups and XML reads (the loops make none).
    "libvirtd": "libvirt",
    "virtqemud": "libvirt",
}
DAEMON_NAMES = sorted(set(DAEMONS.values()))


def _daemon_cpu():
    """CPU seconds the daemons of :data:`DAEMONS` (Ceph's, MariaDB's,
    RabbitMQ's, libvirt's) on this machine have used so far, by name."""
    used = dict.fromkeys(DAEMONS.values(), 0.0)
    for proc in pathlib.Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            name = (proc / "comm").read_text().strip()
            if name in DAEMONS:
                used[DAEMONS[name]] += _cpu_seconds(proc.name)
        except OSError:
            continue  # gone meanwhile
    return used


@contextlib.contextmanager
def _cpu_of(into, what, pids=()):
    """Record in ``into[what]`` the CPU seconds the daemons, this
    process (the raw loops' Ceph client) and ``pids`` (the services)
    use inside the block."""
    daemons, own = _daemon_cpu(), time.process_time()
    services_before = [_cpu_seconds(pid) for pid in pids]
    yield
    used = {
        name: seconds - daemons[name]
        for name, seconds in _daemon_cpu().items()
    }
    used["client"] = time.process_time() - own
    used["services"] = [
        _cpu_seconds(pid) - before
        for pid, before in zip(pids, services_before, strict=True)
    ]
    into[what] = used


def _busy_cpu(pids):
    """CPU seconds Ceph's daemons and processes ``pids`` used so far."""
    daemons = _daemon_cpu()
    return (
        daemons["Ceph OSD"]
        + daemons["Ceph mon"]
        + sum(_cpu_seconds(pid) for pid in pids)
    )


def _wait_quiet(svc, fleet):
    """Return once the machine is idle (see :data:`QUIET_CPU`), or after
    :data:`QUIET_TIMEOUT` seconds; the wait goes into ``fleet.times``."""
    pids = [process.pid for process in svc.processes]
    started = time.monotonic()
    while True:
        before = _busy_cpu(pids)
        time.sleep(QUIET_SPAN)
        quiet = _busy_cpu(pids) - before <= QUIET_CPU
        waited = time.monotonic() - started
        if quiet or waited >= QUIET_TIMEOUT:
            break
    what = (
        "waited for an idle machine"
        if quiet
        else "gave up waiting for an idle machine"
    )
    fleet.times[what] = fleet.times.get(what, 0.0) + waited


def _agent_fanout(svc, fleet):
    """(seconds from the tick to all available, seconds of the tick);
    the CPU time used meanwhile goes into ``fleet.cpu``."""
    with _cpu_of(
        fleet.cpu, "agent", [process.pid for process in svc.processes]
    ):
        return _timed_fanout(svc, fleet)


def _timed_fanout(svc, fleet):
    _make_due(svc.engine, fleet.project_id)

    def all_available():
        statuses = _statuses(svc.engine, fleet.project_id)
        if statuses.get(models.SNAPSHOT_ERROR):
            errors = _errors(svc.engine, fleet.project_id)
            hint = ""
            if any(MISSING in (error or "") for _, error in errors):
                hint = f"\n{DISTURBED}"
            raise FanoutError(
                f"{statuses[models.SNAPSHOT_ERROR]} snapshots failed, e.g. "
                f"{errors}{hint}\n" + svc.env.log_tails()
            )
        return statuses.get(models.SNAPSHOT_AVAILABLE) == fleet.size

    svc.wait_until(
        all_available,
        60 + fleet.size,
        f"{fleet.size} snapshots available",
        interval=0.25,
    )
    tick, recorded, done = _timeline(svc.engine, fleet.project_id)
    return (done - tick).total_seconds(), (recorded - tick).total_seconds()


def _raw_loop(ioctx, images, cpu):
    with _cpu_of(cpu, "loop"):
        started = time.perf_counter()
        for name in images:
            with rbd.Image(ioctx, name) as image:
                image.create_snap(RAW_SNAP)
        return time.perf_counter() - started


def _raw_threaded(ioctx, images, cpu, threads):
    def snap(name):
        with rbd.Image(ioctx, name) as image:
            image.create_snap(f"{RAW_SNAP}{threads}")

    with _cpu_of(cpu, THREADED[threads]):
        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            for future in [pool.submit(snap, name) for name in images]:
                future.result()
        return time.perf_counter() - started


@contextlib.contextmanager
def _profiled(directory, profile):
    """Start the services under :mod:`benchmarks.conductor.sampler`,
    which writes ``<profile>/<binary>.txt`` when each one stops."""
    wrappers = directory / "bin"
    wrappers.mkdir()
    profile.mkdir(parents=True, exist_ok=True)
    root = pathlib.Path(__file__).resolve().parents[2]
    for binary in (CONDUCTOR, COMPUTE):
        script = wrappers / binary
        out = profile / f"{binary}.txt"
        script.write_text(
            "#!/bin/sh\n"
            f"cd {shlex.quote(str(root))} && "
            f"exec {shlex.quote(sys.executable)} "
            f"-m benchmarks.conductor.sampler {shlex.quote(str(out))} "
            f'{binary} "$@"\n'
        )
        script.chmod(0o755)
    saved, services.BIN = services.BIN, wrappers
    try:
        yield
    finally:
        services.BIN = saved


def _check_snapshots(ioctx, images):
    """Each image has the agent's snapshot and the loops', no other."""

    def count(name):
        return len(rbd_helpers.snapshots(ioctx, name))

    wrong = [
        name
        for name, n in zip(images, _parallel(count, images), strict=True)
        if n != SNAPSHOTS_EACH
    ]
    if wrong:
        raise FanoutError(
            f"{len(wrong)} images do not have exactly {SNAPSHOTS_EACH} "
            "snapshots, "
            f"e.g. {wrong[:3]}"
        )


def _measure(svc, fleet, ioctx, repetition):
    try:
        fleet.create()
        _insert_rows(svc.engine, fleet, svc.host)
        images = fleet.images()

        def timed_agent():
            _wait_quiet(svc, fleet)
            return _agent_fanout(svc, fleet)

        def timed_loops():
            _wait_quiet(svc, fleet)
            loop = _raw_loop(ioctx, images, fleet.cpu)
            threaded = []
            for threads in THREADED:
                _wait_quiet(svc, fleet)
                threaded.append(
                    _raw_threaded(ioctx, images, fleet.cpu, threads)
                )
            return loop, *threaded

        (agent, tick), (raw, *threaded) = report.in_turn(
            repetition, timed_agent, timed_loops
        )
        _check_snapshots(ioctx, images)
        return agent, tick, raw, *threaded
    except BaseException:
        # Nothing may still be working on the images while they go.
        svc.env.stop_all()
        raise
    finally:
        try:
            _disable(svc.engine, fleet.project_id)
        finally:
            fleet.remove()


def run(mariadb, rabbitmq, libvirt_info, ceph, sizes, profile=None, repeat=1):
    """Measure every size ``repeat`` times; return the table (a list of
    lines): the medians of the runs, and the range of their ratios.

    ``profile``: a directory for the services' CPU samples (see
    :mod:`benchmarks.conductor.sampler`), or None."""
    lines, notes, cpu_notes = [], [], []
    turn = itertools.count()
    with contextlib.ExitStack() as stack:
        svc = Services(
            stack, mariadb, rabbitmq, libvirt_info, ceph, max(sizes), profile
        )
        conn = libvirt.open(libvirt_info["uri"])
        stack.callback(conn.close)
        ioctx, secret_uuid = stack.enter_context(common.ceph_pool(conn, ceph))

        def fleet_of(size):
            return Fleet(
                size,
                conn,
                ioctx,
                ceph,
                secret_uuid,
                libvirt_info["domain_prefix"],
            )

        _measure(svc, fleet_of(WARM_UP), ioctx, 0)
        for size in sizes:
            runs = []
            for _ in range(repeat):
                fleet = fleet_of(size)
                runs.append((_measure(svc, fleet, ioctx, next(turn)), fleet))
            lines.append(_row(size, runs))
            for _times, fleet in runs:
                cpu_notes.append(f"{size:,}: " + _cpu_note(fleet.cpu))
                notes.append(
                    f"{size:,}: "
                    + ", ".join(
                        f"{what} in {seconds:.1f} s"
                        for what, seconds in fleet.times.items()
                    )
                )
    return report.table(
        "RBD fan-out: N shut-off instances due in one window; seconds; "
        f"ratio = agent / loop, agent / {RAW_THREADS} threads, agent / "
        f"{AGENT_IN_FLIGHT} threads",
        (
            "instances",
            "agent s",
            "loop s",
            *(f"{threads} thr. s" for threads in THREADED),
            "ratio",
            f"ratio {RAW_THREADS}",
            f"r{RAW_THREADS} lo-hi",
            *(f"ratio {threads}" for threads in list(THREADED)[1:]),
            "agent ms/1",
            "loop ms/1",
            "tick s",
            "cond. CPU",
            "agent CPU",
        ),
        lines,
        [
            f"each size measured {repeat} time(s), the agent and the loops "
            "taking turns going first, after an untimed round of "
            f"{WARM_UP} instances; the medians of the runs, and the "
            f"lowest and highest of their agent / {RAW_THREADS} threads "
            "ratios",
            "agent: from the conductor's tick to the last snapshot "
            "recorded available (conductor and agent processes, "
            f"[compute] workers = {RAW_THREADS}, snapshot_workers = "
            f"{AGENT_IN_FLIGHT}); loop: create_snap on each image in turn; "
            "N thr.: the same on N threads",
            "ms/1: per instance; tick s: the tick's claim and its N "
            "snapshot rows, before its casts; CPU: seconds the conductor's "
            "and the agent's processes used meanwhile",
            f"images of {IMAGE_SIZE // MiB} MiB, empty; set-up and clean-up "
            f"on {SETUP_THREADS} threads:",
            *notes,
            "CPU seconds used during each run, by the daemons and by the "
            "raw loops' client (this process):",
            *cpu_notes,
        ],
    )


def _row(size, runs):
    """The table's line of one size: medians over its runs."""
    agent, tick, raw, threaded, *more_threads = (
        statistics.median(times[column] for times, _fleet in runs)
        for column in range(3 + len(THREADED))
    )
    ratios = [times[0] / times[3] for times, _fleet in runs]
    services_cpu = [
        statistics.median(
            fleet.cpu["agent"]["services"][which] for _times, fleet in runs
        )
        for which in (0, 1)
    ]
    return [
        f"{size:,}",
        f"{agent:.2f}",
        f"{raw:.2f}",
        *(f"{seconds:.2f}" for seconds in (threaded, *more_threads)),
        report.ratio(agent, raw),
        report.ratio(agent, threaded),
        f"{min(ratios):.2f}-{max(ratios):.2f}",
        *(report.ratio(agent, seconds) for seconds in more_threads),
        f"{agent * 1000 / size:.1f}",
        f"{raw * 1000 / size:.1f}",
        f"{tick:.2f}",
        *(f"{used:.1f}" for used in services_cpu),
    ]


def _cpu_note(cpu):
    parts = []
    for run in ("agent", "loop", *THREADED.values()):
        used = cpu[run]
        client = (
            "conductor {:.1f}, agent {:.1f}".format(*used["services"])
            if run == "agent"
            else f"client {used['client']:.1f}"
        )
        daemons = ", ".join(
            f"{name} {used[name]:.1f}" for name in DAEMON_NAMES
        )
        parts.append(f"{run}: {client}, {daemons}")
    return "; ".join(parts)
