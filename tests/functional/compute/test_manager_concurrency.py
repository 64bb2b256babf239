"""The agent's manager on the real qcow2 backend and libvirtd.

Several snapshot requests for each of two running instances arrive at
once: the work on one instance never overlaps, the two instances are
worked on side by side, and every snapshot ends up stored and reported.
"""

import threading
import time
import uuid

import pytest

from snapmanager_nova import conf as sm_conf
from snapmanager_nova.compute import manager as compute_manager
from snapmanager_nova.compute.backends import qcow2
from tests.functional.compute import nova_like

CONF = sm_conf.CONF
REQUESTS_PER_INSTANCE = 3


class Recorder:
    def __init__(self):
        self.calls = []
        self.lock = threading.Lock()

    def __getattr__(self, method):
        def record(context, *args):
            with self.lock:
                self.calls.append((method, args))

        return record

    def count(self, method):
        with self.lock:
            return sum(1 for call in self.calls if call[0] == method)


class TimedBackend(qcow2.Qcow2Backend):
    """The real backend, noting when each snapshot starts and ends."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.spans = []

    def snapshot(self, instance, dom, index, quiesce):
        start = time.monotonic()
        try:
            return super().snapshot(instance, dom, index, quiesce)
        finally:
            self.spans.append((instance.uuid, start, time.monotonic()))


@pytest.fixture
def two_instances(nova_host, file_conn):
    instances = [
        nova_like.make_instance(
            file_conn,
            f"{nova_host['domain_prefix']}{uuid.uuid4().hex[:12]}",
            nova_host["instances"],
            nova_host["qemu_log_dir"],
        )
        for _ in range(2)
    ]
    yield instances
    for instance in instances:
        nova_like.undefine_as_nova(instance.dom)


def test_serialized_per_instance_parallel_across(
    two_instances, file_conn, file_mode
):
    file_mode("external")
    CONF.set_override("workers", 2, group="compute")
    backend = TimedBackend(connect=lambda: file_conn)
    conductor = Recorder()
    agent = compute_manager.ComputeManager(
        "host-1", {"file": backend}, conductor, connect=lambda: file_conn
    )
    try:
        index = 0
        for _ in range(REQUESTS_PER_INSTANCE):
            for instance in two_instances:
                index += 1
                agent.create_snapshot(
                    None, instance.uuid, f"snap-{index}", index, "prefer"
                )
        expected = REQUESTS_PER_INSTANCE * len(two_instances)
        deadline = time.monotonic() + 120
        while conductor.count("snapshot_created") < expected:
            assert conductor.count("snapshot_failed") == 0, conductor.calls
            assert time.monotonic() < deadline, conductor.calls
            time.sleep(0.05)
    finally:
        agent.cleanup_host()
        CONF.clear_override("workers", group="compute")

    for instance in two_instances:
        spans = sorted(s[1:] for s in backend.spans if s[0] == instance.uuid)
        assert len(spans) == REQUESTS_PER_INSTANCE
        for (_, end), (next_start, _) in zip(spans, spans[1:], strict=False):
            assert next_start >= end, "two snapshots of one instance overlap"
        assert len(backend.list_indexes(instance.uuid)) == len(spans)
        assert instance.sources() == instance.nova_sources()
    first, second = (
        [s for s in backend.spans if s[0] == instance.uuid]
        for instance in two_instances
    )
    overlapping = any(
        a_start < b_end and b_start < a_end
        for _, a_start, a_end in first
        for _, b_start, b_end in second
    )
    assert overlapping, "the two instances were never worked on at once"
