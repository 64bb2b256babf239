"""snapmanager-conductor: records agents' results (the schedule clock,
retention and restore orchestration join it in later releases)."""

import sys

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import service
from snapmanager_nova.conductor import manager
from snapmanager_nova.conductor import rpcapi
from snapmanager_nova.db import api as db_api

CONF = sm_conf.CONF
BINARY = "snapmanager-conductor"


def main(argv=None):
    service.prepare(argv)

    def heartbeat(context):
        db_api.service_heartbeat(context, BINARY, CONF.host, rpcapi.TOPIC)

    return service.serve(
        service.RPCService(
            BINARY, rpcapi.TOPIC, manager.ConductorManager(), heartbeat
        )
    )


if __name__ == "__main__":
    sys.exit(main())
