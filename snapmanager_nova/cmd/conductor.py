"""snapmanager-conductor: the schedule clock, agents' results, the Nova
inventory and its notification listener, and restore orchestration.
"""

import sys

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import nova
from snapmanager_nova import service
from snapmanager_nova.compute import rpcapi as compute_rpcapi
from snapmanager_nova.conductor import clock
from snapmanager_nova.conductor import holders
from snapmanager_nova.conductor import inventory
from snapmanager_nova.conductor import manager
from snapmanager_nova.conductor import notifications
from snapmanager_nova.conductor import policy_file
from snapmanager_nova.conductor import reconcile
from snapmanager_nova.conductor import release
from snapmanager_nova.conductor import restore
from snapmanager_nova.conductor import retention
from snapmanager_nova.conductor import retries
from snapmanager_nova.conductor import rpcapi
from snapmanager_nova.db import api as db_api

CONF = sm_conf.CONF
BINARY = "snapmanager-conductor"


def main(argv=None):
    service.prepare(argv)

    def heartbeat(context):
        db_api.service_heartbeat(context, BINARY, CONF.host, rpcapi.TOPIC)

    compute_api = compute_rpcapi.ComputeAPI()
    dispatcher = retries.SnapshotDispatcher(compute_api)
    schedule_clock = clock.ScheduleClock(compute_api, dispatcher=dispatcher)
    # One view per conductor of which agents serve which backend, shared
    # by everything that sends work on stored snapshots.
    router = release.AgentRouter()
    retention_ = retention.Retention(compute_api, router=router)
    reconciler = reconcile.Reconciler(compute_api, dispatcher, router=router)
    operator_policies = policy_file.PolicyFileSync()
    nova_compute = nova.LazyCompute(CONF)
    cleanup = inventory.InstanceCleanup(
        compute_api, release.DeletedServerRelease(compute_api, router=router)
    )
    # A scheduled try that fails as if the server were gone asks Nova,
    # and a gone server is never tried again.
    dispatcher.server_gone = release.NovaGoneCheck(nova_compute, cleanup)
    inventory_sync = inventory.InventorySync(nova_compute, cleanup)
    restores = restore.RestoreOrchestrator(
        nova_compute, compute_api, CONF.host, BINARY
    )
    rpc_service = service.RPCService(
        BINARY,
        rpcapi.TOPIC,
        manager.ConductorManager(
            restores=restores,
            retention=retention_,
            dispatcher=dispatcher,
            releases=cleanup.releaser,
        ),
        periodic_tasks=[
            ("heartbeat", CONF.report_interval, heartbeat),
            (
                "schedule-clock",
                CONF.conductor.tick_interval,
                schedule_clock.tick,
            ),
            (
                "nova-inventory",
                CONF.conductor.inventory_sync_interval,
                inventory_sync.sync,
            ),
            ("restores", CONF.conductor.restore_poll_interval, restores.poll),
            (
                "snapshot-retries",
                CONF.conductor.tick_interval,
                dispatcher.retry_due,
            ),
            (
                "reconciliation",
                CONF.conductor.reconcile_interval,
                reconciler.run,
            ),
            (
                "deleted-server-releases",
                CONF.conductor.tick_interval,
                cleanup.releaser.retry_due,
            ),
            (
                "retention-roll-off",
                CONF.conductor.reconcile_interval,
                retention_.roll_off,
            ),
            (
                "policy-file",
                CONF.conductor.policy_file_interval,
                operator_policies.run,
            ),
            # Snapshots stored on a host Nova retired are shown
            # unavailable (doc/source/multihost.rst).
            (
                "retired-hosts",
                CONF.conductor.reconcile_interval,
                holders.RetiredHosts(nova_compute).run,
            ),
        ],
    )
    listener = None
    if CONF.conductor.listen_notifications:
        listener = notifications.get_listener(
            CONF, notifications.NotificationHandler(cleanup, inventory_sync)
        )
    return service.serve(_Conductor(rpc_service, listener))


class _Conductor:
    """The RPC service, and beside it the listener on Nova's
    notifications (started after, stopped before it)."""

    def __init__(self, rpc_service, listener):
        self.rpc_service = rpc_service
        self.listener = listener

    def start(self):
        self.rpc_service.start()
        if self.listener is not None:
            self.listener.start()

    def stop(self):
        if self.listener is not None:
            self.listener.stop()
            self.listener.wait()
        self.rpc_service.stop()


if __name__ == "__main__":
    sys.exit(main())
