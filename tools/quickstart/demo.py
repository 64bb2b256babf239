"""The quickstart's demo server, with a snapshot policy to watch.

`demo-server` belongs to the tenant `demo`. When `up` creates it, it
also gives it a policy that takes a snapshot every minute and keeps the
last three, so that snapshots appear while one watches; the printed
`openstack server snapshot-policy set` replaces that policy with a real
one. A demo server of the other disk mode is replaced: the compute host
of one mode cannot clean up the disks of the other.
"""

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
WAIT = 180


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
    )
    state["demo_server"] = {"id": server_id, "mode": cloud["mode"]}
    stack._save_state(state)
    stack._say("%s is %s, with a policy" % (SERVER_NAME, server_id))
    return server_id
