"""A server's snapshots from policy to deletion, end to end, in both
disk modes.

The tests are the methods of :class:`LifecycleTests`; each mode's module
(test_snapshot_lifecycle_file.py, test_snapshot_lifecycle_rbd.py)
subclasses it and gives the `lifecycle` fixture: a :class:`Lifecycle` on
that mode's cloud, whose `disks` (:class:`FileDisks` or
:class:`RbdDisks`) look at what the mode really stores, below
Snapmanager's API.

A one-minute schedule needs three windows (up to three minutes) before
retention has anything to remove. So the first test sets it, the
restore and delete tests run while its windows pass, and the retention
test comes after them and waits only for what is left.

The tests run in order and share the module's servers; each one also
works alone (the schedule is set by whichever test needs it first).
"""

import concurrent.futures
import datetime
import functools
import json
import pathlib
import re
import subprocess

from snapmanager_nova.db import api as db_api
from snapmanager_nova.db import models
from tests.e2e import helpers
from tests.fixtures import services

USER = "demo"
SPEC = "cron:* * * * *"
KEEP = 2
WINDOW = datetime.timedelta(minutes=1)
# From the policy to the third window's retention: the first window
# starts within a minute, two more follow, and each snapshot and
# deletion takes a few seconds on a busy 2-core machine. Generous: it
# only bounds how long a broken clock makes the test hang.
RETENTION_WAIT = 330
# Agents' snapshots, restores and deletions of tiny disks under TCG.
WORK_WAIT = 120
# restore --wait follows the conductor locking, stopping, restoring,
# starting and unlocking the server (as in test_osc.py).
RESTORE_TIMEOUT = 600
# Nova's `[libvirt] rbd_destroy_volume_retry_interval` (the mini-cloud
# keeps Nova's default): Nova's delete retries `rbd remove` of an image
# that still has snapshots every this many seconds, 12 times, then
# leaks the image.
NOVA_RBD_RETRY_INTERVAL = 5.0

_DESTROY_TOOK = re.compile(
    r"\[instance: (?P<uuid>[0-9a-f-]{36})\] Took (?P<seconds>[0-9.]+) "
    r"seconds to destroy the instance on the hypervisor\."
)

# Bytes written over the disk: the snapshotted pattern, then another.
OFFSET = 1024 * 1024
LENGTH = 64 * 1024
SNAPSHOTTED = 0x5A
OVERWRITTEN = 0xA5


def service_conf(cloud):
    """Snapmanager's options as the stack's services read them."""
    from oslo_config import cfg

    from snapmanager_nova.conf import compute
    from snapmanager_nova.conf import default
    from snapmanager_nova.conf import rbd

    conf = cfg.ConfigOpts()
    for module in (default, compute, rbd):
        module.register_opts(conf)
    conf(
        args=[],
        project="snapmanager",
        default_config_files=[str(cloud.conf)],
        default_config_dirs=[],
    )
    return conf


def nova_destroy_seconds(cloud, server_id):
    """How long Nova's compute manager took to destroy the instance on
    the hypervisor, by its own stopwatch (its log line). In RBD mode
    that includes its retries of `rbd remove`."""
    log = cloud.minicloud.logs["nova-compute"]
    for match in _DESTROY_TOOK.finditer(log.read_text(errors="replace")):
        if match["uuid"] == server_id:
            return float(match["seconds"])
    raise AssertionError(
        f"nova-compute logged no destroy time for {server_id}\n"
        + cloud.minicloud.log_tail("nova-compute")
    )


def nova_rbd_retries(cloud, server_id):
    """nova-compute's log lines of failed `rbd remove`s of the
    server's images (Nova logs those that fail for ImageBusy; an image
    with snapshots is retried silently, which the destroy time shows)."""
    log = cloud.minicloud.logs["nova-compute"].read_text(errors="replace")
    return [
        line for line in log.splitlines() if f"rbd remove {server_id}_" in line
    ]


def wait_for(predicate, timeout, what, describe):
    # Storage and Nova are looked at: every 2 s is often enough.
    return services.wait_until(
        predicate, timeout, interval=2, what=what, describe=describe
    )


class FileDisks:
    """File-backed qcow2 disks and the agent's snapshot store."""

    def __init__(self, cloud):
        self.cloud = cloud
        self.store = pathlib.Path(
            service_conf(cloud).compute.snapshot_store_path
        )

    def _disk(self, server_id):
        return self.cloud.minicloud.instances_path / server_id / "disk"

    def write(self, server_id, byte):
        """Write `byte` over the test's range of the shut-off disk."""
        subprocess.run(
            [
                "qemu-io",
                "-f",
                "qcow2",
                "-c",
                f"write -P {byte} {OFFSET} {LENGTH}",
                str(self._disk(server_id)),
            ],
            check=True,
            capture_output=True,
        )

    def holds(self, server_id, byte):
        """Whether the test's range of the disk reads `byte` throughout.

        qemu-io exits non-zero when `read -P` finds other bytes. -U reads
        the disk of a running guest too: these guests have no OS and
        write nothing.
        """
        result = subprocess.run(
            [
                "qemu-io",
                "-r",
                "-U",
                "-f",
                "qcow2",
                "-c",
                f"read -P {byte} {OFFSET} {LENGTH}",
                str(self._disk(server_id)),
            ],
            capture_output=True,
        )
        return result.returncode == 0

    def stored_indexes(self, server_id):
        """Snapshot indexes in the store: directories with a manifest."""
        directory = self.store / server_id
        if not directory.is_dir():
            return set()
        return {
            int(entry.name)
            for entry in directory.iterdir()
            if entry.name.isdigit() and (entry / "manifest.json").is_file()
        }

    def leftovers(self, server_id):
        """What is left of the server: Nova's directory, the store's."""
        return [
            str(path)
            for path in (
                self.cloud.minicloud.instances_path / server_id,
                self.store / server_id,
            )
            if path.exists()
        ]

    def kept(self, server_id):
        """Where a deleted server's kept snapshots are (its store), once
        nothing of Nova's is left."""
        nova = self.cloud.minicloud.instances_path / server_id
        assert not nova.exists(), f"Nova's files left behind: {nova}"
        return (
            [str(self.store / server_id)]
            if self.stored_indexes(server_id)
            else []
        )

    def check_nova_view(self, server_id, before):
        """The domain and the file are Nova's own: `disk` over `_base`."""
        helpers.check_disk_is_qcow2_over_base(self.cloud.minicloud, server_id)
        disk = self._disk(server_id)
        chain = json.loads(
            subprocess.run(
                [
                    "qemu-img",
                    "info",
                    "-U",
                    "--backing-chain",
                    "--output=json",
                    str(disk),
                ],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        assert [(i["filename"], i["format"]) for i in chain] == [
            (str(disk), "qcow2"),
            (helpers.nova_base_path(self.cloud.minicloud), "raw"),
        ]
        assert chain[0]["virtual-size"] == before

    def identity(self, server_id):
        """What must not change across a restore: the virtual size."""
        info = subprocess.run(
            [
                "qemu-img",
                "info",
                "-U",
                "--output=json",
                str(self._disk(server_id)),
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return json.loads(info)["virtual-size"]


class RbdDisks:
    """Nova's RBD images and the snapshots on them."""

    def __init__(self, cloud, ioctx):
        from snapmanager_nova.compute.backends import rbd_names

        self.cloud = cloud
        self.ioctx = ioctx
        self.names = rbd_names.SnapshotNames(
            service_conf(cloud).rbd.snapshot_prefix
        )

    @staticmethod
    def _image(server_id):
        return f"{server_id}_disk"

    def _open(self, name, read_only=False):
        import rbd

        return rbd.Image(self.ioctx, name, read_only=read_only)

    def write(self, server_id, byte):
        with self._open(self._image(server_id)) as image:
            image.write(bytes([byte]) * LENGTH, OFFSET)
            image.flush()

    def holds(self, server_id, byte):
        with self._open(self._image(server_id), read_only=True) as image:
            return image.read(OFFSET, LENGTH) == bytes([byte]) * LENGTH

    def _images(self, server_id):
        import rbd

        nova, kept = self.names.instance_images(
            server_id, rbd.RBD().list(self.ioctx)
        )
        return nova + kept

    def stored_indexes(self, server_id):
        """Indexes of our snapshots on Nova's or the kept images."""
        indexes = set()
        for name in self._images(server_id):
            with self._open(name, read_only=True) as image:
                for snap in image.list_snaps():
                    index = self.names.parse_snapshot(snap["name"])
                    if index is not None:
                        indexes.add(index)
        return indexes

    def leftovers(self, server_id):
        """The server's images: Nova's `<uuid>_disk*` and kept ones."""
        return self._images(server_id)

    def kept(self, server_id):
        """The images kept out of Nova's namespace, and nothing else."""
        nova = [
            name
            for name in self._images(server_id)
            if self.names.is_nova_image(server_id, name)
        ]
        assert not nova, f"Nova's images left behind: {nova}"
        return self._images(server_id)

    def check_nova_view(self, server_id, before):
        """The domain's disk is still the very image Nova made."""
        helpers.check_disk_is_rbd_image(self.cloud.minicloud, server_id)
        assert self.identity(server_id) == before

    def identity(self, server_id):
        """What must not change across a restore: the image's id (a
        rollback in place, not a new image under Nova's name)."""
        with self._open(self._image(server_id), read_only=True) as image:
            return image.id()


class Lifecycle:
    """One mode's cloud, its disks and the module's servers."""

    def __init__(self, cloud, disks):
        self.cloud = cloud
        self.disks = disks
        self.admin = cloud.connect("admin")
        self.demo = cloud.connect(USER)
        self._baseline = None

    def cli_json(self, *args, **kwargs):
        return self.cloud.cli_json(USER, *args, **kwargs)

    # -- Snapmanager's own records -------------------------------------

    def rows(self, server_id):
        """Every snapshot row of the server, any status, oldest window
        first."""
        with self.cloud.database() as ctx:
            rows = db_api.snapshot_list(ctx, instance_uuid=server_id)
        return sorted(rows, key=lambda row: (row.window_start, row.id))

    def describe(self, server_id):
        def text():
            return "\n".join(
                f"{row.window_start} {row.status} index "
                f"{row.snapshot_index} {row.error or ''}"
                for row in self.rows(server_id)
            ) + "\nstored: %s" % sorted(self.disks.stored_indexes(server_id))

        return text

    def instance_deleted(self, server_id):
        with self.cloud.database() as ctx:
            return db_api.instance_get(ctx, server_id).deleted_at is not None

    def settled(self, server_id):
        """The rows, once none is being created or deleted."""
        rows = self.rows(server_id)
        busy = {models.SNAPSHOT_CREATING, models.SNAPSHOT_DELETING}
        if any(row.status in busy for row in rows):
            return None
        return rows

    # -- servers and snapshots -----------------------------------------

    def create_servers(self, *names):
        """Servers of demo, created side by side."""
        with concurrent.futures.ThreadPoolExecutor(len(names)) as pool:
            return list(
                pool.map(
                    functools.partial(self.cloud.create_server, USER), names
                )
            )

    def snapshot_now(self, server):
        created = self.cli_json(
            "server", "snapshot", "create", server.id, "--wait"
        )
        assert created["status"] == "available", created
        return created

    def stop(self, server):
        self.demo.compute.stop_server(server)
        helpers.wait_status(self.cloud.minicloud, self.demo, server, "SHUTOFF")

    def delete(self, server):
        """Delete through Nova as its owner; Nova's destroy time."""
        self.demo.compute.delete_server(server)
        self.demo.compute.wait_for_delete(server, wait=helpers.WAIT)
        return nova_destroy_seconds(self.cloud, server.id)

    def baseline_destroy_seconds(self, plain=None):
        """Nova's destroy time of a server Snapmanager never saw:
        `plain`, or one made for it; measured once per module."""
        if self._baseline is None:
            if plain is None:
                (plain,) = self.create_servers("lifecycle-plain")
            self._baseline = self.delete(plain)
        return self._baseline

    def check_delete_as_fast(self, server, seconds):
        """Nova's delete of a server with snapshots takes no longer
        than that of one without.

        The bound: Nova's own destroy time (its stopwatch, in its log,
        not ours) of a plain server of the same image and flavor, plus
        one of Nova's `rbd remove` retry intervals. A retry loop over an
        image with snapshots adds at least one interval (a minute when
        it gives up), while the two deletes otherwise take about the
        same time; a whole interval of margin keeps the load of a
        shared machine out of the verdict. In file mode Nova has no
        retry loop, and the bound is the same.
        """
        baseline = self.baseline_destroy_seconds()
        assert seconds < baseline + NOVA_RBD_RETRY_INTERVAL, (
            f"Nova took {seconds:.2f} s to destroy {server.id} with "
            f"snapshots, {baseline:.2f} s without"
        )
        assert not nova_rbd_retries(self.cloud, server.id)

    # -- the schedule ----------------------------------------------------

    @functools.cached_property
    def scheduled(self):
        """(server, schedule as shown) of the module's one-minute
        schedule, set through the CLI the first time it is asked for."""
        (server,) = self.create_servers("lifecycle-sched")
        policy = ("server", "snapshot-policy")
        self.cloud.cli(
            USER,
            *policy,
            "set",
            "--spec",
            SPEC,
            "--keep",
            str(KEEP),
            server.name,
        )
        shown = self.cli_json(*policy, "show", server.name)
        return server, shown

    def available(self, server_id):
        """The available rows, once none is being created or deleted."""
        return [
            row
            for row in self.settled(server_id) or ()
            if row.status == models.SNAPSHOT_AVAILABLE
        ]

    def retained(self, server_id):
        """The rows once retention has worked on three windows: the
        newest KEEP available, every older one deleted."""
        rows = [
            row
            for row in self.rows(server_id)
            if row.status != models.SNAPSHOT_CREATING
        ]
        if len(rows) <= KEEP:
            return None
        older, newest = rows[:-KEEP], rows[-KEEP:]
        if all(r.status == models.SNAPSHOT_DELETED for r in older) and all(
            r.status == models.SNAPSHOT_AVAILABLE for r in newest
        ):
            return rows
        return None


class LifecycleTests:
    """The tests, for a module that gives the `lifecycle` fixture."""

    def test_policy_through_the_cli(self, lifecycle):
        server, shown = lifecycle.scheduled
        assert shown["server_id"] == server.id
        assert shown["keep_after_delete"] is False
        (schedule,) = shown["schedules"]
        assert schedule["spec"] == SPEC
        assert schedule["timezone"] == "UTC"
        assert schedule["retention"] == {"keep_count": KEEP}
        assert schedule["enabled"] is True
        next_run = datetime.datetime.fromisoformat(schedule["next_run_at"])
        assert next_run.second == 0
        assert next_run - datetime.datetime.now(datetime.UTC) <= WINDOW

    def test_restore_gives_back_the_snapshotted_bytes(self, lifecycle):
        disks = lifecycle.disks
        (server,) = lifecycle.create_servers("lifecycle-restore")
        lifecycle.stop(server)
        before = disks.identity(server.id)
        disks.write(server.id, SNAPSHOTTED)
        snapshot = lifecycle.snapshot_now(server)
        disks.write(server.id, OVERWRITTEN)
        assert disks.holds(server.id, OVERWRITTEN)

        operation = lifecycle.cli_json(
            "server",
            "snapshot",
            "restore",
            snapshot["id"],
            "--wait",
            timeout=RESTORE_TIMEOUT,
        )
        assert (operation["state"], operation["progress"]) == (
            "succeeded",
            100,
        )

        assert disks.holds(server.id, SNAPSHOTTED)
        after = lifecycle.admin.compute.get_server(server.id)
        assert after.status == "ACTIVE"
        assert after.is_locked is False
        assert after.locked_reason is None
        assert helpers.domain(lifecycle.cloud.minicloud, server.id).isActive()
        disks.check_nova_view(server.id, before)

    def test_delete_with_snapshots(self, lifecycle):
        disks = lifecycle.disks
        plain, server = lifecycle.create_servers(
            "lifecycle-plain", "lifecycle-delete"
        )
        assert lifecycle.baseline_destroy_seconds(plain) > 0
        snapshots = [lifecycle.snapshot_now(server) for _ in range(2)]
        assert len(disks.stored_indexes(server.id)) == 2

        lifecycle.check_delete_as_fast(server, lifecycle.delete(server))

        wait_for(
            lambda: (
                not disks.leftovers(server.id)
                and lifecycle.instance_deleted(server.id)
            ),
            WORK_WAIT,
            f"nothing left of {server.id}",
            lambda: (
                "%s\n%s"
                % (disks.leftovers(server.id), lifecycle.describe(server.id)())
            ),
        )
        rows = wait_for(
            lambda: lifecycle.settled(server.id),
            WORK_WAIT,
            f"the snapshots of {server.id} deleted",
            lifecycle.describe(server.id),
        )
        assert {row.status for row in rows} == {models.SNAPSHOT_DELETED}
        listing = ("server", "snapshot", "list", server.id)
        assert lifecycle.cli_json(*listing) == []
        deleted = lifecycle.cli_json(*listing, "--status", "deleted")
        assert {row["ID"] for row in deleted} == {s["id"] for s in snapshots}

    def test_scheduled_snapshots_and_retention(self, lifecycle):
        server, shown = lifecycle.scheduled
        (schedule,) = shown["schedules"]
        wait_for(
            lambda: lifecycle.retained(server.id),
            RETENTION_WAIT,
            f"three windows of {server.id} and retention",
            lifecycle.describe(server.id),
        )
        # Stop the clock, so that what is checked stays put. The same
        # spec updates the schedule in place: a snapshot still being
        # taken keeps its schedule and its retention.
        lifecycle.cloud.cli(
            USER,
            "server",
            "snapshot-policy",
            "set",
            "--spec",
            SPEC,
            "--keep",
            str(KEEP),
            "--disable",
            server.name,
        )
        wait_for(
            lambda: lifecycle.settled(server.id),
            WORK_WAIT,
            f"the snapshots of {server.id} settled",
            lifecycle.describe(server.id),
        )
        rows = lifecycle.retained(server.id)
        assert rows, lifecycle.describe(server.id)()

        # One snapshot per window, every minute from the first run.
        windows = [
            row.window_start.replace(tzinfo=datetime.UTC) for row in rows
        ]
        first = datetime.datetime.fromisoformat(schedule["next_run_at"])
        assert windows == [first + n * WINDOW for n in range(len(rows))]
        assert {row.schedule_id for row in rows} == {schedule["id"]}

        kept, gone = rows[-KEEP:], rows[:-KEEP]
        listed = lifecycle.cli_json("server", "snapshot", "list", server.name)
        assert [(r["ID"], r["Status"]) for r in listed] == [
            (row.id, "available") for row in kept
        ]
        deleted = lifecycle.cli_json(
            "server", "snapshot", "list", server.name, "--status", "deleted"
        )
        assert {r["ID"] for r in deleted} == {row.id for row in gone}
        # Really gone from storage, and the kept ones really there.
        assert lifecycle.disks.stored_indexes(server.id) == {
            row.snapshot_index for row in kept
        }

    def test_keep_after_delete(self, lifecycle):
        disks = lifecycle.disks
        server, _ = lifecycle.scheduled
        lifecycle.cloud.cli(
            USER,
            "server",
            "snapshot-policy",
            "set",
            "--keep-after-delete",
            server.name,
        )
        # Those of the retention test; alone, this test waits for the
        # first window.
        available = wait_for(
            lambda: lifecycle.available(server.id),
            RETENTION_WAIT,
            f"available snapshots of {server.id}",
            lifecycle.describe(server.id),
        )

        lifecycle.check_delete_as_fast(server, lifecycle.delete(server))
        wait_for(
            lambda: lifecycle.instance_deleted(server.id),
            WORK_WAIT,
            f"{server.id} recorded as deleted",
            lifecycle.describe(server.id),
        )

        # Kept: listed for the deleted server, and in storage, outside
        # Nova's namespace. They stay until deleted by hand or rolled
        # off after `[conductor] unscheduled_max_age` days (whole days,
        # so not in this test; the roll-off itself is covered by
        # tests/functional/conductor/test_retention.py).
        listing = ("server", "snapshot", "list", server.id)
        assert [
            (r["ID"], r["Status"]) for r in lifecycle.cli_json(*listing)
        ] == [(row.id, "available") for row in available]
        assert disks.stored_indexes(server.id) == {
            row.snapshot_index for row in available
        }
        assert disks.kept(server.id)

        # Deleting them by hand leaves nothing behind.
        lifecycle.cloud.cli(
            USER,
            "server",
            "snapshot",
            "delete",
            *[row.id for row in available],
            "--wait",
        )
        wait_for(
            lambda: not disks.leftovers(server.id),
            WORK_WAIT,
            f"nothing left of {server.id}",
            lambda: str(disks.leftovers(server.id)),
        )
        assert lifecycle.cli_json(*listing) == []
