"""The quickstart's demo server, with a snapshot policy to watch.

`demo-server` belongs to the tenant `demo`. When `up` creates it, it
also gives it a policy that takes a snapshot every minute and keeps the
last three, so that snapshots appear while one watches; the printed
`openstack server snapshot-policy set` replaces that policy with a real
one.

A demo server of the other disk mode is replaced. `retire` deletes it
*before* the cloud switches mode, while the compute host still serves its
disks: Nova in file mode leaves an RBD disk behind, and Snapmanager's
agent of one mode is not configured for the other's storage. It waits
until Snapmanager has released the server's snapshots, so that switching
back and forth leaves no schedule, RBD image or store file behind.
"""

import subprocess
import time

from . import stack as stack_module
from ._tools import minicloud

config = minicloud.config
rest = minicloud.rest

SERVER_NAME = "demo-server"
USER = "demo"
DEMO_POLICY = {
    "schedules": [
        {"spec": "cron:* * * * *", "retention": {"keep_count": 3}},
    ]
}
# `"networks": "none"` needs this compute API microversion.
COMPUTE_VERSION = {"OpenStack-API-Version": "compute 2.37"}
# The Snapmanager API microversion DEMO_POLICY is written for.
SNAPMANAGER_VERSION = {"OpenStack-API-Version": "snapmanager 1.0"}
WAIT = 180

# Waits, in the project's venv (argv: config file, server id, seconds),
# until Snapmanager recorded the server's delete and released its
# storage; exits 1 with the reason when the release is still pending.
_RELEASED_SCRIPT = r"""
import sys
import time

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import context as sm_context
from snapmanager_nova import exception
from snapmanager_nova.db import api as db_api

conf_file, server_id, wait = sys.argv[1:]
sm_conf.CONF(["--config-file", conf_file], project="snapmanager")
ctx = sm_context.get_admin_context()
deadline = time.monotonic() + float(wait)
while True:
    try:
        row = db_api.instance_get(ctx, server_id)
    except exception.InstanceNotFound:
        break
    if row.deleted_at is not None and row.release_state != "pending":
        break
    if time.monotonic() > deadline:
        sys.exit("release of %s still pending: %s"
                 % (server_id, row.release_error or "not recorded yet"))
    time.sleep(0.5)
"""


def _servers_url(path=""):
    return config.url("nova-api", "/v2.1/servers" + path)


def _find(token):
    url = _servers_url("?name=%%5E%s%%24" % SERVER_NAME)
    return rest.request("GET", url, None, token)[2]["servers"]


def _get(token, server_id):
    url = _servers_url("/" + server_id)
    return rest.request("GET", url, None, token, COMPUTE_VERSION)[2]["server"]


def _wait(what, check):
    deadline = time.monotonic() + WAIT
    while not check():
        if time.monotonic() > deadline:
            raise stack_module.StackError("%s: not within %ds" % (what, WAIT))
        time.sleep(0.5)


def _delete(token, server_id):
    rest.request("DELETE", _servers_url("/" + server_id), None, token)

    def gone():
        try:
            _get(token, server_id)
        except rest.HttpError as exc:
            if exc.status == 404:
                return True
            raise
        return False

    _wait("deleting the old %s" % SERVER_NAME, gone)


def _create(token, cloud):
    body = {
        "server": {
            "name": SERVER_NAME,
            "imageRef": cloud["image_id"],
            "flavorRef": cloud["flavor_id"],
            "networks": "none",
        }
    }
    server_id = rest.request(
        "POST", _servers_url(), body, token, COMPUTE_VERSION
    )[2]["server"]["id"]

    def active():
        server = _get(token, server_id)
        if server["status"] == "ERROR":
            raise stack_module.StackError(
                "%s went to ERROR: %s"
                % (SERVER_NAME, server.get("fault", {}).get("message"))
            )
        return server["status"] == "ACTIVE"

    _wait("%s to become ACTIVE" % SERVER_NAME, active)
    return server_id


def _released(stack, server_id):
    result = subprocess.run(
        [
            str(stack_module.VENV / "bin" / "python"),
            "-c",
            _RELEASED_SCRIPT,
            str(stack.conf_path),
            server_id,
            str(WAIT),
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=stack._child_env(),
        timeout=WAIT + 60,
    )
    if result.returncode:
        raise stack_module.StackError(
            "%s %s: %s"
            % (
                SERVER_NAME,
                server_id,
                (result.stderr or result.stdout)[-2000:],
            )
        )


def retire(stack, cloud_status, mode):
    """Delete the demo server of the other disk mode while the cloud still
    runs in that mode; returns its ID, or None if there was none to retire
    (or it cannot be retired now: then `ensure` replaces it later).

    :param cloud_status: the mini-cloud's `status()`.
    :param mode: the disk mode the cloud is about to run in.
    """
    state = stack._load_state()
    record = state.get("demo_server") or {}
    old_mode = record.get("mode")
    if not record.get("id") or old_mode in (None, mode):
        return None
    cloud_running = cloud_status.get("mode") == old_mode and all(
        proc["running"]
        for name, proc in cloud_status["processes"].items()
        if name in minicloud.cloud.CORE_SERVICES
    )
    stack_running = all(
        proc["running"] for proc in stack.status()["processes"].values()
    )
    if not (cloud_running and stack_running):
        return None
    token = rest.token(USER, config.PEOPLE[USER]["project"])
    stack._say(
        "deleting %s %s before switching %s to %s disks"
        % (SERVER_NAME, record["id"], old_mode, mode)
    )
    try:
        _delete(token, record["id"])
    except rest.HttpError as exc:
        if exc.status != 404:
            raise
    _released(stack, record["id"])
    state = stack._load_state()
    state.pop("demo_server", None)
    stack._save_state(state)
    stack._say("%s %s released" % (SERVER_NAME, record["id"]))
    return record["id"]


def ensure(stack, cloud):
    """The demo server's ID; made (with its policy) if missing."""
    token = rest.token(USER, config.PEOPLE[USER]["project"])
    state = stack._load_state()
    record = state.get("demo_server") or {}
    found = _find(token)
    wanted = {"id": record.get("id"), "mode": cloud["mode"]}
    for server in found:
        if record == wanted and server["id"] == record["id"]:
            stack._say("%s is %s" % (SERVER_NAME, server["id"]))
            return server["id"]
    for server in found:
        stack._say("deleting %s %s" % (SERVER_NAME, server["id"]))
        _delete(token, server["id"])
    server_id = _create(token, cloud)
    rest.request(
        "PUT",
        "%s/v1/servers/%s/snapshot-policy" % (stack_module.API_URL, server_id),
        DEMO_POLICY,
        token,
        SNAPMANAGER_VERSION,
    )
    state["demo_server"] = {"id": server_id, "mode": cloud["mode"]}
    stack._save_state(state)
    stack._say("%s is %s, with a policy" % (SERVER_NAME, server_id))
    return server_id
