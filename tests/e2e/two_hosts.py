"""Nova's operations on a server with snapshots, on the two-host
mini-cloud (`minicloud up --hosts 2`), in both disk modes.

Each operation runs twice, on a plain server and on one with snapshots,
both of the same flavor and on the same host. For the one with snapshots
known bytes go into its disk before each of its two snapshots and after
them (written from outside while it is shut off: the guests have no OS).
Afterwards:

- Nova's end state is the plain server's (status, host, no fault, no
  task left) and the one expected of the operation;
- nothing of the server is left where Nova no longer keeps it (the old
  host's instance directory or `_resize` copy, an RBD image or snapshot
  of Nova's, a Glance image of a shelve);
- the disk holds what was last written: Nova moved the data;
- both snapshots are still listed, and each restores the bytes it held;
- a new snapshot is taken by the agent of the server's host now.

Nova's time for the operation (API call to the end state, both steps of
a migration or resize) is printed for both servers as a line
`TIMING <mode> <operation> plain=<s> with-snapshots=<s>`; speed is not
asserted (benchmarks/ does that).

One operation, `cold-migrate-agents-killed`, kills both hosts' agents
(SIGKILL) right after Nova's migrate request and starts them again while
Nova moves the server: each agent recovers on its own, and the checks
above hold all the same.

The operations and the hosts they start from are in OPERATIONS; each
mode's module (test_two_hosts_file.py, test_two_hosts_rbd.py) runs those
Nova supports in its mode. A fast subset runs by default; the whole
matrix with SNAPMANAGER_E2E_FULL_MATRIX=1 (tests/e2e/conftest.py).
"""

import concurrent.futures
import contextlib
import dataclasses
import time
import uuid

import libvirt
import pytest

from snapmanager_nova.db import models
from tests.e2e import helpers
from tests.e2e import snapshot_lifecycle

USER = "admin"
# Nova's operations on tiny TCG guests of a busy 2-core machine.
WAIT = 300
# The bytes written before the first snapshot, before the second and
# after both (the server's data when Nova moves it).
FIRST, SECOND, LAST = 0x11, 0x22, 0x33
# Microversions: host on create (2.74), on cold migration (2.56), on
# live migration with block_migration "auto" (2.30), on unshelve (2.91);
# forced_down by service ID (2.53). Evacuation with a host, and the
# server ACTIVE afterwards as before 2.95.
MICROVERSION = "2.91"
EVACUATE_MICROVERSION = "2.29"


@dataclasses.dataclass(frozen=True)
class Operation:
    name: str
    start: int  # the host (1 or 2) the servers are created on
    end: int  # the host they are on afterwards
    modes: tuple = ("file", "rbd")
    fast: frozenset = frozenset()  # the modes where it is in the fast subset


OPERATIONS = (
    Operation("cold-migrate-confirm", 1, 2),
    # Both hosts' agents killed (SIGKILL) as Nova starts moving the
    # server with snapshots, and started again while it does.
    Operation("cold-migrate-agents-killed", 1, 2, fast=frozenset({"file"})),
    Operation("cold-migrate-revert", 1, 1),
    Operation("resize-other-host-confirm", 1, 2),
    Operation("resize-other-host-revert", 1, 1),
    Operation("resize-same-host-confirm", 1, 1),
    Operation("resize-same-host-revert", 1, 1),
    Operation("live-migrate", 1, 2, fast=frozenset({"rbd"})),
    Operation("evacuate", 2, 1, modes=("rbd",), fast=frozenset({"rbd"})),
    Operation("shelve-unshelve-other-host", 1, 2),
    Operation("rescue-unrescue", 1, 1),
    Operation("hard-reboot-during-snapshot", 1, 1),
)


def params(mode):
    """pytest params of the mode's operations; the full matrix marked."""
    return [
        pytest.param(
            op,
            id=op.name,
            marks=() if mode in op.fast else (pytest.mark.two_hosts_full,),
        )
        for op in OPERATIONS
        if mode in op.modes
    ]


class FileDisks(snapshot_lifecycle.FileDisks):
    """qcow2 under each host's own instances directory."""

    def __init__(self, two):
        super().__init__(two.cloud)
        self.two = two

    def _disk(self, server_id):
        host = self.two.host_of(server_id)
        return self.two.instances_dir(host) / server_id / "disk"

    def nova_leftovers(self, server_id, host):
        """What Nova left of the server that it no longer uses: any
        instance directory but the one on its host."""
        found = []
        for number in (1, 2):
            directory = self.two.instances_dir(number)
            for name in (server_id, server_id + "_resize", server_id + "_del"):
                path = directory / name
                if path.exists() and (number, name) != (host, server_id):
                    found.append(str(path))
        return found

    def check_nova_disk(self, server_id):
        """Nova's own disk, `disk` over `_base`, and nothing else (on
        host 1, whose libvirtd and paths the helpers know)."""
        helpers.check_disk_is_qcow2_over_base(self.two.minicloud, server_id)


class RbdDisks(snapshot_lifecycle.RbdDisks):
    """Nova's images in the test Ceph's pool."""

    def __init__(self, two, ioctx):
        super().__init__(two.cloud, ioctx)
        self.two = two

    def nova_leftovers(self, server_id, host):
        """Nova's images of the server but its disk, and Nova's resize
        snapshot on that disk (Snapmanager's kept images are not
        Nova's)."""
        import rbd

        found = [
            name
            for name in rbd.RBD().list(self.ioctx)
            if self.names.is_nova_image(server_id, name)
            and name != self._image(server_id)
        ]
        with self._open(self._image(server_id), read_only=True) as image:
            found += [
                "%s@%s" % (self._image(server_id), snap["name"])
                for snap in image.list_snaps()
                if snap["name"] == "nova-resize"
            ]
        return found

    def check_nova_disk(self, server_id):
        helpers.check_disk_is_rbd_image(self.two.minicloud, server_id)


class TwoHosts:
    """The two-host cloud as the tests use it: Nova's API as admin,
    Snapmanager's CLI, the hosts and their services."""

    def __init__(self, cloud, minicloud_session, snapmanager_session, env):
        self.cloud = cloud
        self.minicloud = cloud.minicloud
        self.minicloud_session = minicloud_session
        self.snapmanager_session = snapmanager_session
        self.env = env
        self.admin = cloud.connect(USER)
        self.hosts = self.minicloud.hosts
        assert len(self.hosts) == 2, self.hosts
        self.disks = None
        flavors = self.get("/flavors")["flavors"]
        self.flavors = {f["name"]: f["id"] for f in flavors}

    # -- Nova's API ----------------------------------------------------

    def _check(self, response, method, path):
        if response.status_code >= 400:
            pytest.fail(
                "%s %s: %d %s"
                % (method, path, response.status_code, response.text),
                pytrace=False,
            )
        return response

    def get(self, path, microversion=MICROVERSION):
        response = self.admin.compute.get(path, microversion=microversion)
        return self._check(response, "GET", path).json()

    def post(self, path, body, microversion=MICROVERSION):
        response = self.admin.compute.post(
            path, json=body, microversion=microversion
        )
        return self._check(response, "POST", path)

    def action(self, server_id, body, microversion=MICROVERSION):
        return self.post(
            "/servers/%s/action" % server_id, body, microversion=microversion
        )

    def server(self, server_id):
        return self.get("/servers/%s" % server_id)["server"]

    def host_of(self, server_id):
        """The number (1 or 2) of the host Nova has the server on."""
        name = self.server(server_id)["OS-EXT-SRV-ATTR:host"]
        return self.number(name)

    def number(self, host_name):
        for index, host in enumerate(self.hosts, start=1):
            if host["name"] == host_name:
                return index
        raise AssertionError("unknown host %r" % host_name)

    def instances_dir(self, number):
        import pathlib

        return pathlib.Path(self.hosts[number - 1]["instances_dir"])

    def wait(self, server_id, status):
        """The server once it is in `status` with no task; fails on ERROR."""
        deadline = time.monotonic() + WAIT
        while True:
            server = self.server(server_id)
            if server["status"] == "ERROR":
                pytest.fail(
                    "server %s went to ERROR: %s\n%s\n%s"
                    % (
                        server_id,
                        server.get("fault"),
                        self.minicloud.log_tail("nova-compute"),
                        self.minicloud.log_tail("nova-compute-2"),
                    ),
                    pytrace=False,
                )
            if (
                server["status"] == status
                and server["OS-EXT-STS:task_state"] is None
            ):
                return server
            if time.monotonic() > deadline:
                pytest.fail(
                    "server %s not %s within %ds: %s (task %s)"
                    % (
                        server_id,
                        status,
                        WAIT,
                        server["status"],
                        server["OS-EXT-STS:task_state"],
                    ),
                    pytrace=False,
                )
            time.sleep(0.2)

    def create_server(self, prefix, host, flavor="minicloud.move"):
        """An ACTIVE server of admin's on host `host` (1 or 2)."""
        body = {
            "server": {
                "name": "%s-%s" % (prefix, uuid.uuid4().hex[:6]),
                "imageRef": self.minicloud.image_id,
                "flavorRef": self.flavors[flavor],
                "networks": "none",
                "host": self.hosts[host - 1]["name"],
            }
        }
        server = self.post("/servers", body).json()["server"]
        self._cleanups.callback(self.delete_server, server["id"])
        self.wait(server["id"], "ACTIVE")
        return server["id"]

    def delete_server(self, server_id):
        response = self.admin.compute.delete(
            "/servers/%s" % server_id, microversion=MICROVERSION
        )
        if response.status_code == 404:
            return
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            response = self.admin.compute.get(
                "/servers/%s" % server_id, microversion=MICROVERSION
            )
            if response.status_code == 404:
                return
            time.sleep(0.5)

    def stop(self, server_id):
        self.action(server_id, {"os-stop": None})
        self.wait(server_id, "SHUTOFF")

    def start(self, server_id):
        self.action(server_id, {"os-start": None})
        self.wait(server_id, "ACTIVE")

    # -- Snapmanager ----------------------------------------------------

    def cli_json(self, *args, **kwargs):
        return self.cloud.cli_json(USER, *args, **kwargs)

    def snapshot(self, server_id):
        created = self.cli_json(
            "server", "snapshot", "create", server_id, "--wait"
        )
        assert created["status"] == "available", created
        return created["id"]

    def listed(self, server_id):
        return {
            row["ID"]: row["Status"]
            for row in self.cli_json("server", "snapshot", "list", server_id)
        }

    def restore(self, snapshot_id):
        return self.cli_json(
            "server",
            "snapshot",
            "restore",
            snapshot_id,
            "--wait",
            timeout=snapshot_lifecycle.RESTORE_TIMEOUT,
        )

    def agent_log(self, number):
        name = (
            "snapmanager-compute" if number == 1 else "snapmanager-compute-2"
        )
        path = self.cloud.logs[name]
        return path.read_text(errors="replace") if path.exists() else ""

    def settled_rows(self, server_id):
        with self.cloud.database() as ctx:
            from snapmanager_nova.db import api as db_api

            rows = db_api.snapshot_list(ctx, instance_uuid=server_id)
        busy = {models.SNAPSHOT_CREATING, models.SNAPSHOT_DELETING}
        if any(row.status in busy for row in rows):
            return None
        return rows

    # -- the hosts ------------------------------------------------------

    def take_host2_down(self, server_ids):
        """Host 2 fails: its agent and nova-compute stop, its guests die;
        Nova is told the service is down (force-down, as an operator's
        fencing would)."""
        self.cloud_stack().stop(["snapmanager-compute-2"])
        self.minicloud_session.cloud.stop(["nova-compute-2"])
        conn = libvirt.open(self.hosts[1]["libvirt_uri"])
        try:
            for server_id in server_ids:
                domain = conn.lookupByUUIDString(server_id)
                if domain.isActive():
                    domain.destroy()
        finally:
            conn.close()
        self.force_down(True)

    def force_down(self, down):
        """Set host 2's nova-compute forced down (or not); whether Nova
        took it."""
        services = self.get("/os-services?binary=nova-compute", "2.53")
        (service,) = [
            s
            for s in services["services"]
            if s["host"] == self.hosts[1]["name"]
        ]
        response = self.admin.compute.put(
            "/os-services/%s" % service["id"],
            json={"forced_down": down},
            microversion="2.53",
        )
        if down:
            self._check(response, "PUT", "/os-services")
        return response.status_code == 200

    def bring_host2_back(self):
        """Host 2 restarts; then Nova lets it be up again.

        Nova refuses to lift the forced down state while evacuations from
        the host are not cleaned up, which the host's nova-compute does
        when it starts: lift it once that is done, while `up` waits for
        the host to report.
        """
        mode = self.minicloud.mode
        env = dict(self.minicloud_session.foundation)
        if mode == "rbd":
            env["ceph"] = self.env["ceph"]
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            starting = pool.submit(
                self.minicloud_session.cloud.up,
                rbd=mode == "rbd",
                env=env,
                hosts=2,
            )
            deadline = time.monotonic() + WAIT
            while not self.force_down(False):
                assert time.monotonic() < deadline, "host 2 stays down"
                assert not starting.done(), starting.result()
                time.sleep(0.5)
            info = starting.result()
        self.cloud_stack().up(info, env)

    def check_mode(self):
        """The cloud still runs in this module's disk mode.

        One mini-cloud serves both modes, and another pytest session on
        the same machine may switch it while this one runs: say so,
        rather than fail on a disk of the other kind.
        """
        running = self.minicloud_session.cloud.status()["mode"]
        assert running == self.minicloud.mode, (
            "another test session switched the mini-cloud to %s disks"
            % running
        )

    def cloud_stack(self):
        return self.snapmanager_session.stack

    # -- the module's life -----------------------------------------------

    def __enter__(self):
        self._cleanups = contextlib.ExitStack()
        self.background = self._cleanups.enter_context(
            concurrent.futures.ThreadPoolExecutor(1)
        )
        return self

    def __exit__(self, *exc):
        self._cleanups.close()


def glance_images_named(two, prefix):
    images = two.admin.image.images()
    return [image.name for image in images if image.name.startswith(prefix)]


# -- the operations: each returns Nova's seconds for the server --------


def _timed(steps):
    started = time.monotonic()
    steps()
    return time.monotonic() - started


def run_operation(two, op, server_id, during_snapshot=None, midway=None):
    """Run `op` on the server; Nova's time in seconds. `during_snapshot`
    runs before a hard reboot, `midway` right after a migration's or
    resize's first request."""
    other = two.hosts[2 - op.start]["name"]
    move_h1 = two.flavors["minicloud.move-h1"]
    move_h2 = two.flavors["minicloud.move-h2"]

    def then(action, verdict):
        """A cold migration or resize (`action`), confirmed or reverted."""

        def steps():
            two.action(server_id, action)
            if midway is not None:
                midway()
            two.wait(server_id, "VERIFY_RESIZE")
            two.action(server_id, {verdict: None})
            two.wait(server_id, "ACTIVE")

        return steps

    migrate = {"migrate": {"host": other}}

    def live():
        two.action(
            server_id,
            {"os-migrateLive": {"host": other, "block_migration": "auto"}},
        )
        two.wait(server_id, "ACTIVE")
        # Back ACTIVE before the host changes in some releases: wait for it.
        deadline = time.monotonic() + WAIT
        while two.host_of(server_id) != op.end:
            assert time.monotonic() < deadline, "live migration did not move"
            time.sleep(0.2)

    def evacuate():
        two.action(
            server_id,
            {"evacuate": {"host": other}},
            microversion=EVACUATE_MICROVERSION,
        )
        two.wait(server_id, "ACTIVE")

    def shelve_unshelve():
        two.action(server_id, {"shelve": None})
        two.wait(server_id, "SHELVED_OFFLOADED")
        two.action(server_id, {"unshelve": {"host": other}})
        two.wait(server_id, "ACTIVE")

    def rescue_unrescue():
        two.action(server_id, {"rescue": {}})
        two.wait(server_id, "RESCUE")
        two.action(server_id, {"unrescue": None})
        two.wait(server_id, "ACTIVE")

    def hard_reboot():
        if during_snapshot is not None:
            during_snapshot()
        two.action(server_id, {"reboot": {"type": "HARD"}})
        two.wait(server_id, "ACTIVE")

    steps = {
        "cold-migrate-confirm": then(migrate, "confirmResize"),
        "cold-migrate-revert": then(migrate, "revertResize"),
        "cold-migrate-agents-killed": then(migrate, "confirmResize"),
        "resize-other-host-confirm": then(
            {"resize": {"flavorRef": move_h2}}, "confirmResize"
        ),
        "resize-other-host-revert": then(
            {"resize": {"flavorRef": move_h2}}, "revertResize"
        ),
        "resize-same-host-confirm": then(
            {"resize": {"flavorRef": move_h1}}, "confirmResize"
        ),
        "resize-same-host-revert": then(
            {"resize": {"flavorRef": move_h1}}, "revertResize"
        ),
        "live-migrate": live,
        "evacuate": evacuate,
        "shelve-unshelve-other-host": shelve_unshelve,
        "rescue-unrescue": rescue_unrescue,
        "hard-reboot-during-snapshot": hard_reboot,
    }[op.name]
    return _timed(steps)


def check_operation(two, op, mode):
    """The whole check of one operation in one mode (see the module)."""
    plain, server = _create_pair(two, op)
    try:
        _check_operation(two, op, mode, plain, server)
    finally:
        # Each test's servers go at its end: a host holds 32 vCPUs, and
        # other test runs share them.
        for server_id in (plain, server):
            two.delete_server(server_id)


def _check_operation(two, op, mode, plain, server):
    disks = two.disks
    two.check_mode()

    # Known bytes, two snapshots, the last bytes; then it runs again.
    two.stop(server)
    disks.write(server, FIRST)
    first = two.snapshot(server)
    disks.write(server, SECOND)
    second = two.snapshot(server)
    disks.write(server, LAST)
    two.start(server)
    before = {first, second}

    if op.name == "evacuate":
        two.take_host2_down([plain, server])
    started_during = []

    def during_snapshot():
        # Asked for straight from the API, not waited for: Nova's hard
        # reboot follows within milliseconds, while the agent works.
        response = two.cloud.request(
            USER, "POST", "/v1/servers/%s/snapshots" % server, json={}
        )
        assert response.status_code == 202, response.text
        started_during.append(response.json()["snapshot"]["id"])

    restarting = []

    def crash_and_restart():
        two.cloud_stack().crash_agents()
        two.cloud_stack().start_agents(two.minicloud.info)

    def crash_agents():
        # Killed while Nova's request is on its way, and started again,
        # in the background, so that Nova's time is its own.
        restarting.append(two.background.submit(crash_and_restart))

    try:
        plain_seconds = run_operation(two, op, plain)
        seconds = run_operation(
            two,
            op,
            server,
            during_snapshot if op.name.startswith("hard-reboot") else None,
            crash_agents if op.name.endswith("agents-killed") else None,
        )
    finally:
        if op.name == "evacuate":
            two.bring_host2_back()
        for started in restarting:
            # Both agents report again: each recovered on its own.
            started.result(timeout=WAIT)
    print(
        "TIMING %s %s plain=%.1f with-snapshots=%.1f"
        % (mode, op.name, plain_seconds, seconds)
    )

    two.check_mode()
    # Nova's end state: the plain server's, on the expected host.
    seen = {sid: two.server(sid) for sid in (plain, server)}
    for sid, state in seen.items():
        assert state["status"] == "ACTIVE", (sid, state.get("fault"))
        assert state.get("fault") is None, state["fault"]
        assert two.host_of(sid) == op.end, (sid, op)
    assert (
        seen[plain]["OS-EXT-STS:vm_state"]
        == seen[server]["OS-EXT-STS:vm_state"]
    )
    assert seen[plain]["flavor"] == seen[server]["flavor"]

    # Nothing left where Nova no longer keeps the server.
    snapshot_lifecycle.wait_for(
        lambda: (
            not disks.nova_leftovers(server, op.end)
            and not disks.nova_leftovers(plain, op.end)
        ),
        snapshot_lifecycle.WORK_WAIT,
        "Nova's leftovers of %s gone" % op.name,
        lambda: str(
            disks.nova_leftovers(server, op.end)
            + disks.nova_leftovers(plain, op.end)
        ),
    )
    if op.name.startswith("shelve"):
        names = [seen[plain]["name"], seen[server]["name"]]
        assert not [
            n
            for n in glance_images_named(two, "")
            if any(n.startswith(x) for x in names)
        ]
    assert disks.holds(server, LAST), "Nova lost the server's data"
    if op.name.startswith("hard-reboot"):
        disks.check_nova_disk(server)

    # Every snapshot taken before: listed, settled, and restorable.
    rows = snapshot_lifecycle.wait_for(
        lambda: two.settled_rows(server),
        snapshot_lifecycle.WORK_WAIT,
        "the snapshots of %s settled" % server,
        lambda: str(two.listed(server)),
    )
    listed = two.listed(server)
    assert {sid: listed.get(sid) for sid in before} == {
        first: "available",
        second: "available",
    }, listed
    if started_during:
        # The one Nova's reboot interrupted ends either way, never stuck.
        (during,) = started_during
        assert {r.id: r.status for r in rows}[during] in (
            models.SNAPSHOT_AVAILABLE,
            models.SNAPSHOT_ERROR,
            models.SNAPSHOT_DELETED,
        )
    for snapshot_id, byte in ((first, FIRST), (second, SECOND)):
        operation = two.restore(snapshot_id)
        assert (operation["state"], operation["progress"]) == (
            "succeeded",
            100,
        ), operation
        assert disks.holds(server, byte), "restore of %s" % snapshot_id
        after = two.server(server)
        assert (after["status"], after["locked"]) == ("ACTIVE", False)
        assert two.host_of(server) == op.end

    # The next snapshot is the new host's agent's work.
    newest = two.snapshot(server)
    assert newest in two.agent_log(op.end)
    assert newest not in two.agent_log(3 - op.end)


def _create_pair(two, op):
    """(plain, with-snapshots) servers on the operation's first host."""
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        return list(
            pool.map(
                lambda prefix: two.create_server(prefix, op.start),
                ("h2-plain-%s" % op.name[:12], "h2-snap-%s" % op.name[:12]),
            )
        )
