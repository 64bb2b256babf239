"""A compute agent that dies by SIGKILL in the middle of a snapshot.

    python -m tests.functional.compute.crash_child '<json parameters>'

Parameters: "uri", "instances_path", "snapshot_store_path", "mode",
"uuid", "index", "step", and optionally "operation" ("delete" deletes
snapshot "index" instead). The process takes a snapshot of the domain and
kills itself with SIGKILL when the backend reaches ``step`` (one of the
points of :mod:`snapmanager_nova.compute.backends.crashpoints`): nothing
in it gets a chance to clean up, exactly as with ``kill -9`` of the
agent. Exit status 3 means the step was never
reached.
"""

import json
import os
import signal
import sys

import libvirt

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import privsep
from snapmanager_nova.compute import domain
from snapmanager_nova.compute.backends import crashpoints
from snapmanager_nova.compute.backends import qcow2

STEP_NOT_REACHED = 3


def main(argv):
    params = json.loads(argv[1])
    conf = sm_conf.CONF
    for name in ("instances_path", "snapshot_store_path"):
        conf.set_override(name, params[name], group="compute")
    conf.set_override("libvirt_uri", params["uri"], group="compute")
    conf.set_override("file_snapshot_mode", params["mode"], group="compute")
    # Root already: the privileged functions run in this process, so the
    # kill takes them down at the same instant.
    privsep.sys_admin_pctxt.set_client_mode(False)
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

    def crash(step):
        if step == params["step"]:
            os.kill(os.getpid(), signal.SIGKILL)

    crashpoints.reached = crash
    conn = libvirt.open(params["uri"])
    dom = conn.lookupByUUIDString(params["uuid"])
    instance = domain.parse_domain_xml(
        dom.XMLDesc(0), skip_disks=tuple(conf.compute.skip_disks)
    )
    backend = qcow2.Qcow2Backend(connect=lambda: conn)
    if params.get("operation") == "delete":
        backend.delete(params["uuid"], params["index"], [])
    else:
        backend.snapshot(instance, dom, params["index"], "prefer")
    return STEP_NOT_REACHED


if __name__ == "__main__":
    sys.exit(main(sys.argv))
