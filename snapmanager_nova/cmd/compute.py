"""snapmanager-compute: the agent beside nova-compute on every host."""

import sys

import libvirt

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import privsep
from snapmanager_nova import service
from snapmanager_nova.compute import connection
from snapmanager_nova.compute import events
from snapmanager_nova.compute import manager
from snapmanager_nova.compute import rpcapi
from snapmanager_nova.compute.backends import qcow2
from snapmanager_nova.compute.backends import rbd
from snapmanager_nova.conductor import rpcapi as conductor_rpcapi

CONF = sm_conf.CONF
BINARY = "snapmanager-compute"


def _ignore_libvirt_errors(_context, _error):
    # libvirt-python prints every error to stderr as well as raising it;
    # the agent logs the ones that matter, with their codes, itself.
    pass


def main(argv=None):
    service.prepare(argv)
    libvirt.registerErrorHandler(_ignore_libvirt_errors, None)
    privsep.start_daemon()
    # After the privileged daemon forks (a fork while the event thread
    # runs could copy a lock it holds), and before any connection opens
    # (only later ones deliver events).
    events.start_loop()
    conductor = conductor_rpcapi.ConductorAPI()
    libvirt_conn = connection.LibvirtConnection()
    available = {"file": qcow2.Qcow2Backend, "rbd": rbd.RbdBackend}
    backends = {
        name: available[name](connect=libvirt_conn.get)
        for name in CONF.compute.backends
    }
    agent = manager.ComputeManager(
        CONF.host, backends, conductor, connect=libvirt_conn.get
    )

    announced = []

    def heartbeat(context):
        conductor.service_heartbeat(context, BINARY, CONF.host, rpcapi.TOPIC)
        if not announced:
            # The first run is right after the RPC server started: work
            # on these backends may come now, and releases that waited
            # for an agent serving them are tried again.
            conductor.agent_started(context, CONF.host, sorted(backends))
            announced.append(True)

    return service.serve(
        service.RPCService(
            BINARY,
            rpcapi.TOPIC,
            agent,
            periodic_tasks=[("heartbeat", CONF.report_interval, heartbeat)],
        )
    )


if __name__ == "__main__":
    sys.exit(main())
