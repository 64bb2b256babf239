"""snapmanager-conductor: the schedule clock, and agents' results.

Retention, the Nova inventory and restore orchestration join it in later
releases.
"""

import sys

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import service
from snapmanager_nova.compute import rpcapi as compute_rpcapi
from snapmanager_nova.conductor import clock
from snapmanager_nova.conductor import manager
from snapmanager_nova.conductor import rpcapi
from snapmanager_nova.db import api as db_api

CONF = sm_conf.CONF
BINARY = "snapmanager-conductor"


def main(argv=None):
    service.prepare(argv)

    def heartbeat(context):
        db_api.service_heartbeat(context, BINARY, CONF.host, rpcapi.TOPIC)

    schedule_clock = clock.ScheduleClock(compute_rpcapi.ComputeAPI())
    return service.serve(
        service.RPCService(
            BINARY,
            rpcapi.TOPIC,
            manager.ConductorManager(),
            periodic_tasks=[
                ("heartbeat", CONF.report_interval, heartbeat),
                (
                    "schedule-clock",
                    CONF.conductor.tick_interval,
                    schedule_clock.tick,
                ),
            ],
        )
    )


if __name__ == "__main__":
    sys.exit(main())
