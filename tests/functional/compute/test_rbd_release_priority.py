"""A release is served at once, whatever else the agent is doing.

Nova's delete, rebuild and shelve-offload retry ``rbd remove`` for about
a minute while an image has snapshots, then leak it: the agent's
``release_instance`` must not wait for a thread behind a burst of other
instances' snapshots. Here every thread of the agent's manager that
takes RBD snapshots is busy on real ones (their conductor reports held
back, as by a slow bus) with more queued behind them, and a release of
another instance is asked for: it completes, and Nova's own removal
succeeds at its first try, while every one of the burst's snapshots is
still unreported.
"""

import threading

import pytest

from snapmanager_nova import conf as sm_conf
from snapmanager_nova.compute import manager as compute_manager
from tests.fixtures.services import wait_until
from tests.functional.compute import rbd_helpers as helpers

CONF = sm_conf.CONF

ceph_secret = helpers.ceph_secret
rbd_conf = helpers.rbd_conf
rbd_agent_client = helpers.rbd_agent_client
rbd_backend = helpers.rbd_backend
rbd_instance = helpers.rbd_instance

WORKERS = 2
SNAPSHOTS_PER_INSTANCE = 4


class HeldConductor:
    """The conductor's RPC API as the agent calls it; the agent's
    results wait until :meth:`open` (a bus that is slow to take them),
    which keeps the agent's workers busy."""

    def __init__(self):
        self.gate = threading.Event()
        self.calls = []
        self.held = 0
        self.lock = threading.Lock()

    def open(self):
        self.gate.set()

    def snapshot_created(self, context, *args):
        with self.lock:
            self.held += 1
        # Bounded, so a failing test cannot hang the workers for ever.
        self.gate.wait(timeout=120)
        self._record("snapshot_created", args)

    def __getattr__(self, method):
        return lambda context, *args: self._record(method, args)

    def _record(self, method, args):
        with self.lock:
            self.calls.append((method, args))

    def count(self, method):
        with self.lock:
            return sum(1 for call in self.calls if call[0] == method)


@pytest.fixture
def call_timeout():
    # The deadline of the release call, for the run without the fix.
    CONF.set_override("call_timeout", 60, group="compute")
    CONF.set_override("workers", WORKERS, group="compute")
    CONF.set_override("snapshot_workers", WORKERS, group="compute")
    yield
    CONF.clear_override("call_timeout", group="compute")
    CONF.clear_override("workers", group="compute")
    CONF.clear_override("snapshot_workers", group="compute")


def test_release_beats_a_burst_of_snapshots(
    call_timeout, rbd_backend, rbd_instance, libvirt_env, ceph, ceph_client
):
    import libvirt

    conn = libvirt.open(libvirt_env["uri"])
    busy = [rbd_instance() for _ in range(WORKERS + 1)]
    deleted = rbd_instance(("disk", "disk.local"))
    rbd_backend.snapshot(deleted.instance(), helpers.FakeDomain(), 1, "skip")
    conductor = HeldConductor()
    agent = compute_manager.ComputeManager(
        "host-1", {"rbd": rbd_backend}, conductor, connect=lambda: conn
    )
    domains = [conn.defineXML(layout.xml) for layout in busy]
    try:
        burst = 0
        for index in range(2, 2 + SNAPSHOTS_PER_INSTANCE):
            for layout in busy:
                burst += 1
                agent.create_snapshot(
                    None, layout.uuid, f"snap-{burst}", index, "skip"
                )
        # Every snapshot thread is taken by a snapshot of the burst.
        wait_until(
            lambda: conductor.held == WORKERS,
            timeout=60,
            what="the snapshot threads busy with the burst",
        )

        released = {}

        def release():
            released["indexes"] = agent.release_instance(
                None, deleted.uuid, "rbd", True
            )

        asker = threading.Thread(target=release, daemon=True)
        asker.start()
        wait_until(
            lambda: "indexes" in released,
            timeout=60,
            what="the release done while the burst holds every thread",
        )
        assert released["indexes"] == [1]
        # Not one snapshot of the burst got its report through.
        assert conductor.held == WORKERS
        assert conductor.count("snapshot_created") == 0
        outcome = helpers.NovaCleanup(ceph, deleted.uuid).run()
        assert outcome["error"] is None
        assert helpers.instance_images(ceph_client, deleted.uuid) == (
            [],
            sorted(
                f"snapmanager-kept-{deleted.uuid}-1_{name}"
                for name in deleted.disk_names
            ),
        )

        # The burst goes on once its reports get through.
        conductor.open()
        wait_until(
            lambda: conductor.count("snapshot_created") == burst,
            timeout=120,
            what="every snapshot of the burst reported",
        )
        assert conductor.count("snapshot_failed") == 0
        for layout in busy:
            assert rbd_backend.list_indexes(layout.uuid) == list(
                range(2, 2 + SNAPSHOTS_PER_INSTANCE)
            )
    finally:
        conductor.open()
        agent.cleanup_host()
        for dom in domains:
            dom.undefine()
        conn.close()
