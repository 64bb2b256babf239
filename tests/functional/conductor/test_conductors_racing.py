"""Two conductors at once, and a conductor killed -9 while it casts.

Real ``snapmanager-conductor`` processes on two hosts of their own, a
real ``snapmanager-compute`` agent (file backend) on the private
libvirtd, all on the test MariaDB and a RabbitMQ vhost of the module's
own (``real_agent.private_bus``). The instances are Nova-like domains
left shut off, so the agent copies their disks without a freeze; each
has one daily schedule, and all of them fall due in the same window.

The kill is deterministic: the conductor is run with the clock's test
crash point (``clock._test_crash_point``) replaced, and SIGKILLs itself
just before one of its casts -- after the claim committed, with part of
the window cast and the rest recorded but never cast. That rest can
only come back through reconciliation, which waits ``[conductor]
operation_timeout`` (at least 60 s: less would make operators'
conductors retry snapshots that are still being copied), so the second
test takes a little over a minute.
"""

import collections
import datetime
import os
import re
import signal
import sys
import uuid as uuid_lib

import pytest

from snapmanager_nova import context as sm_context
from snapmanager_nova import schedule as schedule_engine
from snapmanager_nova.db import api as db_api
from snapmanager_nova.db import models
from tests.fixtures.services import unique_host
from tests.fixtures.services import wait_until
from tests.functional.compute import nova_like
from tests.functional.conductor import real_agent

private_bus = real_agent.private_bus

BINARY = "snapmanager-conductor"
INSTANCES = 20
# The conductor killed in its fan-out dies before its eighth cast.
CAST_BEFORE_THE_KILL = 7
OPERATION_TIMEOUT = 60
CONDUCTOR_OPTIONS = {
    "tick_interval": "1",
    # Two schedules per claim and one claim per tick: the two conductors
    # take turns at the window instead of one of them claiming it all in
    # one tick (a tick goes on claiming while more is due otherwise, and
    # takes these 20 before the other ticks).
    "claim_batch_size": "2",
    "claim_time_slice": "0",
    # Reconciliation as soon as the options allow.
    "operation_timeout": str(OPERATION_TIMEOUT),
    "reconcile_interval": "10",
    "retry_base_delay": "1",
    "retry_max_delay": "2",
}
# What a tick logs (clock.ScheduleClock.tick) after its claim committed.
CLAIMED = re.compile(r"Claimed (\d+) snapshot\(s\) of due windows")

# The conductor's own entry point, with the clock's crash point armed.
CRASHING_CONDUCTOR = """\
#!{python}
# snapmanager-conductor, killed by SIGKILL just before cast {cast}.
import os
import signal
import sys

from snapmanager_nova.cmd import conductor
from snapmanager_nova.conductor import clock

reached = 0


def crash(stage):
    global reached
    if stage == "casting":
        reached += 1
        if reached == {cast}:
            os.kill(os.getpid(), signal.SIGKILL)


clock._test_crash_point = crash
sys.exit(conductor.main())
"""


class Conductors:
    """The module's conductor processes, on two hosts."""

    def __init__(self, env, ctx):
        self.env = env
        self.ctx = ctx
        self.hosts = (unique_host("conductor-a"), unique_host("conductor-b"))
        self.processes = {}

    def start(self, host, crash_before_cast=None):
        binary = BINARY
        if crash_before_cast is not None:
            binary = self._crashing_binary(crash_before_cast)
        self.processes[host] = self.env.start(binary, host)
        return self.processes[host]

    def _crashing_binary(self, cast):
        directory = self.env.directory / f"crashing-{cast}"
        directory.mkdir(exist_ok=True)
        path = directory / BINARY
        path.write_text(
            CRASHING_CONDUCTOR.format(python=sys.executable, cast=cast)
        )
        path.chmod(0o755)
        # An absolute path: env.start runs it instead of the venv's
        # binary, and its host config and log go beside it.
        return str(path)

    def wait_up(self, since):
        """Until every running conductor heartbeated after ``since``."""

        def up():
            for process in self.processes.values():
                assert process.poll() is None, self.env.log_tails()
            seen = {
                service.host
                for service in db_api.service_list(self.ctx, binary=BINARY)
                if service.last_seen_at >= since
            }
            return seen >= set(self.processes)

        wait_until(up, timeout=60, what="the conductors' heartbeats")

    def stop(self):
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            process.wait(timeout=30)
        self.processes.clear()

    def log_marks(self):
        return {
            host: process.log.stat().st_size
            for host, process in self.processes.items()
        }

    def claimed_since(self, marks):
        """{host: snapshots claimed} from the logs since ``marks``."""
        claimed = {}
        for host, mark in marks.items():
            with open(self.processes[host].log) as log:
                log.seek(mark)
                claimed[host] = sum(
                    int(count) for count in CLAIMED.findall(log.read())
                )
        return claimed


@pytest.fixture(scope="module")
def conductors(private_bus, snapmanager_env):
    """Two conductors running, before the agent host starts: with one
    registered, real_agent.start adds none of its own."""
    snapmanager_env.write_config({"conductor": CONDUCTOR_OPTIONS})
    running = Conductors(snapmanager_env, sm_context.get_admin_context())
    started = models.utcnow()
    for host in running.hosts:
        running.start(host)
    running.wait_up(started)
    return running


@pytest.fixture(scope="module")
def agent_host(conductors, snapmanager_env, tmp_path_factory, libvirt_env):
    host = real_agent.start(
        snapmanager_env,
        tmp_path_factory,
        libvirt_env,
        conductor=CONDUCTOR_OPTIONS,
    )
    host.start_agent("file")
    return host


@pytest.fixture
def instances(agent_host, libvirt_env, libvirt_conn):
    """INSTANCES shut-off file-backed instances on the agent's host."""
    # One cached image for all of them: one _base file to write.
    image_id = str(uuid_lib.uuid4())
    made = []
    try:
        for _ in range(INSTANCES):
            instance = nova_like.make_instance(
                libvirt_conn,
                f"{libvirt_env['domain_prefix']}{uuid_lib.uuid4().hex[:12]}",
                str(agent_host.instances),
                agent_host.qemu_log_dir,
                running=False,
                config_drive=False,
                image_id=image_id,
            )
            made.append(instance)
            agent_host.record(instance.uuid, "file")
        yield [instance.uuid for instance in made]
    finally:
        for instance in made:
            nova_like.undefine_as_nova(instance.dom)


def due_at_once(ctx, uuids):
    """One daily schedule per instance, all due in one commit; returns
    ({uuid: schedule}, the window they are due for)."""
    now = models.utcnow()
    spec = f"daily@{now:%H:%M}"
    window = schedule_engine.parse_spec(spec, "UTC").previous_run(now)
    schedules = {
        uuid: db_api.schedule_create(
            ctx,
            {
                "instance_uuid": uuid,
                "family": "daily",
                "spec": spec,
                "timezone": "UTC",
            },
        )
        for uuid in uuids
    }
    with db_api.context_manager.writer.using(ctx):
        for schedule in schedules.values():
            db_api.schedule_update(ctx, schedule.id, {"next_run_at": now})
    return schedules, window


def snapshots_of(ctx, uuids):
    """{instance uuid: [its snapshot rows]}, for every instance."""
    rows = collections.defaultdict(list)
    for row in db_api.snapshot_list(ctx, project_id=real_agent.PROJECT):
        if row.instance_uuid in uuids:
            rows[row.instance_uuid].append(row)
    return {uuid: rows[uuid] for uuid in uuids}


def all_available(ctx, uuids, timeout):
    def check():
        rows = snapshots_of(ctx, uuids)
        failed = [
            (row.id, row.error)
            for snapshots in rows.values()
            for row in snapshots
            if row.status == "error"
        ]
        assert not failed, failed
        done = all(
            snapshots and all(row.status == "available" for row in snapshots)
            for snapshots in rows.values()
        )
        return rows if done else None

    return wait_until(
        check,
        timeout=timeout,
        interval=0.5,
        what=f"a snapshot of each of {len(uuids)} instances available",
    )


def on_disk(agent_host, uuid):
    directory = agent_host.store / uuid
    return sorted(os.listdir(directory)) if directory.exists() else []


def assert_one_snapshot_each(agent_host, schedules, window, rows):
    """One available snapshot per instance for the window, in the
    database and in the agent's storage, and the window done."""
    ctx = agent_host.ctx
    for uuid, schedule in schedules.items():
        (snapshot,) = rows[uuid]
        assert snapshot.status == "available"
        assert snapshot.schedule_id == schedule.id
        assert snapshot.window_start == window
        assert snapshot.error is None
        # The first index of the instance, and no other ever given out.
        assert snapshot.snapshot_index == 1
        assert db_api.instance_get(ctx, uuid).snapshot_index == 1
        assert agent_host.stored(uuid, "file") == [1]
        assert on_disk(agent_host, uuid) == ["1"]
        advanced = db_api.schedule_get(ctx, schedule.id)
        assert advanced.last_run_at == window
        assert advanced.next_run_at == window + datetime.timedelta(days=1)


def test_two_conductors_take_each_window_once(
    agent_host, conductors, instances
):
    ctx = agent_host.ctx
    marks = conductors.log_marks()
    schedules, window = due_at_once(ctx, instances)

    rows = all_available(ctx, instances, timeout=120)

    assert_one_snapshot_each(agent_host, schedules, window, rows)
    # Both conductors took part, and each instance was claimed once.
    claimed = conductors.claimed_since(marks)
    assert sum(claimed.values()) == INSTANCES, claimed
    assert all(claimed.values()), claimed


def test_a_conductor_killed_while_casting_loses_and_duplicates_nothing(
    agent_host, conductors, instances, snapmanager_env
):
    ctx = agent_host.ctx
    first, second = conductors.hosts
    # Only the conductor to be killed runs when the window falls due, and
    # it claims the whole window in one tick.
    conductors.stop()
    snapmanager_env.write_config(
        dict(
            agent_host.sections,
            conductor=dict(
                agent_host.sections["conductor"],
                claim_batch_size=str(INSTANCES),
                # One snapshot per message (create_snapshots of one):
                # the kill falls between two messages to the agent, as
                # it may between two batches of a larger window.
                cast_batch_size="1",
            ),
        )
    )
    try:
        crashing = conductors.start(
            first, crash_before_cast=CAST_BEFORE_THE_KILL + 1
        )
        schedules, window = due_at_once(ctx, instances)
        wait_until(
            lambda: crashing.poll() is not None,
            timeout=60,
            what="the conductor's death in its fan-out",
        )
        assert crashing.returncode == -signal.SIGKILL, (
            snapmanager_env.log_tails()
        )

        # The whole window is claimed, part of it cast.
        rows = snapshots_of(ctx, instances)
        claimed = {}
        for uuid, snapshots in rows.items():
            (snapshot,) = snapshots
            assert snapshot.status == "creating"
            assert snapshot.window_start == window
            claimed[uuid] = snapshot.id
        assert {
            db_api.schedule_get(ctx, schedule.id).last_run_at
            for schedule in schedules.values()
        } == {window}

        def cast():
            taken = [u for u in instances if on_disk(agent_host, u) == ["1"]]
            return taken if len(taken) >= CAST_BEFORE_THE_KILL else None

        cast_before = set(wait_until(cast, timeout=60, what="the casts"))
        assert len(cast_before) == CAST_BEFORE_THE_KILL
        # The agent got nothing else, not even a copy begun.
        assert [
            uuid
            for uuid in instances
            if uuid not in cast_before and on_disk(agent_host, uuid)
        ] == []

        # The other conductor takes over, and the killed one comes back.
        conductors.start(second)
        conductors.start(first)
        rows = all_available(ctx, instances, timeout=OPERATION_TIMEOUT + 90)
    finally:
        snapmanager_env.write_config(agent_host.sections)

    assert {uuid: rows[uuid][0].id for uuid in instances} == claimed
    assert_one_snapshot_each(agent_host, schedules, window, rows)
    # The rows cast before the kill were taken at the first try, the
    # others after reconciliation found the agent had never had them.
    assert {uuid: rows[uuid][0].attempts for uuid in instances} == {
        uuid: 0 if uuid in cast_before else 1 for uuid in instances
    }
