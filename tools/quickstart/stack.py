"""Snapmanager's services on the mini-cloud: configure, start, wait, stop.

`Stack.up()` takes a running mini-cloud (the info `MiniCloud.up()`
returns) and the test environment's entries, and

1. registers Snapmanager in the cloud's Keystone (keystone.py);
2. writes snapmanager.conf with tools/testenv/write_config.py (database
   and message bus) plus what the cloud adds: Keystone, Nova's API, the
   compute host's name, instances path and libvirt, and Ceph in RBD mode;
3. runs `snapmanager-manage db sync`;
4. starts snapmanager-conductor, snapmanager-compute and snapmanager-api
   from the project's venv and waits until the API answers and both
   agents' heartbeats are in the database.

It is idempotent like the mini-cloud: services already running with the
same code, cloud and test environment are left alone; a cloud switched
to the other disk mode restarts snapmanager-compute only; anything else
restarts all three.

The processes are supervised exactly as the mini-cloud's own (a PID and
start-time record in state.json, process groups, SIGTERM then SIGKILL,
waits that fail as soon as a watched process dies): `Stack` reuses
`MiniCloud`'s supervision for its own directory, `snapmanager/` in the
mini-cloud's, and its own services.
"""

import configparser
import io
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

from . import keystone
from ._tools import minicloud

config = minicloud.config
rest = minicloud.rest

TOP = pathlib.Path(__file__).resolve().parents[2]
# The project's venv, as tools/testenv/setup-venv.sh makes it.
VENV = pathlib.Path(os.environ.get("VENV", TOP / ".venv"))

API_HOST = config.HOST_IP
API_PORT = 8799
API_URL = "http://%s:%d" % (API_HOST, API_PORT)

# Start order; `down` stops them in reverse. The compute agent's heartbeat
# goes through the conductor, so the conductor comes first.
SERVICES = ("snapmanager-conductor", "snapmanager-compute", "snapmanager-api")
# The compute agent of the mini-cloud's second host (`--hosts 2`).
COMPUTE_2 = "snapmanager-compute-2"
HEARTBEATS = ("snapmanager-conductor", "snapmanager-compute")

# On the test environment's MariaDB, beside the mini-cloud's databases.
DATABASE = "minicloud_snapmanager"
# Snapmanager's own vhost on the test environment's RabbitMQ (see
# Stack._transport_url).
VHOST = "snapmanager-minicloud"

# Seconds between two heartbeats, and between two ticks of the schedule
# clock: short, so that `up` sees the agents report within a second or
# two and a one-minute schedule is served on time.
REPORT_INTERVAL = 2
TICK_INTERVAL = 5

# Waits for the database to show a heartbeat newer than the start of the
# services (argv: config file, start time, binaries). It runs in the
# project's venv, which has the database driver this tool does without.
_HEARTBEAT_SCRIPT = r"""
import datetime
import sys
import time

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import context as sm_context
from snapmanager_nova.db import api as db_api

conf_file, started, *binaries = sys.argv[1:]
sm_conf.CONF(["--config-file", conf_file], project="snapmanager")
since = datetime.datetime.fromtimestamp(float(started), datetime.UTC)
ctx = sm_context.get_admin_context()
while True:
    fresh = {
        service.binary
        for service in db_api.service_list(ctx)
        if service.host == sm_conf.CONF.host and service.last_seen_at > since
    }
    if fresh >= set(binaries):
        break
    time.sleep(0.2)
"""

_DROP_DATABASE_SCRIPT = r"""
import json
import sys

import sqlalchemy as sa

env_json, name = sys.argv[1:]
with open(env_json) as f:
    url = json.load(f)["mariadb"]["url"]
engine = sa.create_engine(url)
with engine.begin() as conn:
    conn.exec_driver_sql("DROP DATABASE IF EXISTS `%s`" % name)
engine.dispose()
"""


class StackError(minicloud.MiniCloudError):
    """Snapmanager did not come up; the message says why and shows the
    end of the relevant log."""


def _code_stamp():
    """The newest change to Snapmanager's code, schema or packaging, or
    to how this tool configures it.

    Services started before it run old code: `up` restarts them.
    """
    paths = [
        TOP / "setup.cfg",
        VENV / ".snapmanager-requirements",
        TOP / "tools" / "testenv" / "write_config.py",
    ]
    paths += (TOP / "snapmanager_nova").rglob("*.py")
    paths += (TOP / "db" / "migrations").rglob("*.py")
    paths += pathlib.Path(__file__).parent.glob("*.py")
    return max((p.stat().st_mtime for p in paths if p.exists()), default=0)


def _write_private(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


class Stack(minicloud.cloud.MiniCloud):
    """Snapmanager's services on one mini-cloud.

    :param cloud_dir: the mini-cloud's directory (default: the one
        `python3 tools/minicloud` uses); Snapmanager's live in its
        `snapmanager/` subdirectory.
    """

    def __init__(self, cloud_dir=None, out=sys.stderr):
        cloud_dir = pathlib.Path(cloud_dir or minicloud.default_dir())
        super().__init__(cloud_dir / "snapmanager", out)

    # -- where things are ------------------------------------------------

    @property
    def conf_path(self):
        return self.layout.root / "snapmanager.conf"

    @property
    def conf_2_path(self):
        """snapmanager.conf of host 2's compute agent."""
        return self.layout.root / "snapmanager-2.conf"

    @property
    def info_path(self):
        return self.layout.root / "snapmanager.json"

    @property
    def openrc_path(self):
        return self.layout.root / "openrc"

    @property
    def _env_path(self):
        # The test environment's entries this stack runs on, for the
        # helpers run in the project's venv. It holds passwords.
        return self.layout.root / "env.json"

    def _say(self, message):
        elapsed = time.monotonic() - self._t0
        print("snapmanager [%5.1fs] %s" % (elapsed, message), file=self.out)
        self.out.flush()

    def _argv(self, state, name):
        if name == COMPUTE_2:
            # Beside host 2's nova-compute: its libvirtd, and Nova's
            # instances_path as host 2 sees it (minicloud/hosts.py).
            cloud_layout = config.Layout(self.layout.root.parent)
            return minicloud.hosts.in_host2(
                cloud_layout,
                self._testenv(),
                sys.executable,
                [
                    VENV / "bin" / "snapmanager-compute",
                    "--config-file",
                    self.conf_2_path,
                    "--log-file",
                    self.log_path(name),
                ],
            ), {}
        return [
            VENV / "bin" / name,
            "--config-file",
            self.conf_path,
            "--log-file",
            self.log_path(name),
        ], {}

    # -- installation ----------------------------------------------------

    def install(self):
        """The project's venv (Snapmanager, its tests, the OSC), if stale."""
        self._run(
            "setup-venv", ["bash", TOP / "tools" / "testenv" / "setup-venv.sh"]
        )

    # -- configuration ---------------------------------------------------

    def _transport_url(self, env):
        """Snapmanager's message bus: a vhost of its own.

        Every conductor consumes the agents' results from the queue named
        after its topic, and queues are per vhost: on the test
        environment's shared vhost, the conductors that functional tests
        and benchmarks start would take this stack's results (and it
        theirs). Nova's notifications stay on the shared vhost, where
        the mini-cloud sends them. A RabbitMQ the test environment did
        not start is not ours to add vhosts to: its vhost is shared.
        """
        entry = env["rabbitmq"]
        if entry.get("external"):
            return entry["transport_url"]
        testenv = self._testenv()
        return testenv.RabbitMQ(testenv.env_dir()).vhost_url(VHOST)

    def _write_env(self, cloud, env):
        wanted = ("mariadb", "rabbitmq", "libvirt")
        if cloud["mode"] == "rbd":
            wanted += ("ceph",)
        _write_private(
            self._env_path, json.dumps({k: env[k] for k in wanted}, indent=2)
        )

    def _render(self, cloud, env, debug):
        """snapmanager.conf for the cloud's mode; creates the database."""
        rbd = cloud["mode"] == "rbd"
        self._write_env(cloud, env)
        overlay = {
            "DEFAULT": {
                # The compute agent's RPC server is named after this host:
                # it must be the host Nova records for its instances.
                "host": cloud["host"],
                "state_path": self.layout.root / "state",
                "report_interval": REPORT_INTERVAL,
                "debug": debug,
                "transport_url": self._transport_url(env),
            },
            "api": {
                "bind_host": API_HOST,
                "bind_port": API_PORT,
                "auth_strategy": "keystone",
            },
            "keystone_authtoken": config._authtoken(keystone.SERVICE_USER),
            "nova": dict(
                config._service_auth(keystone.SERVICE_USER),
                notification_transport_url=env["rabbitmq"]["transport_url"],
            ),
            "conductor": {
                "tick_interval": TICK_INTERVAL,
                # Nova's notifications are on the shared vhost: a pool of
                # its own, or the conductors of functional tests running
                # meanwhile would take this stack's share.
                "notification_pool": "snapmanager-minicloud",
            },
            # The demo policy takes a snapshot every minute (demo.py).
            "quota": {"min_schedule_interval": 60},
            "compute": {
                "instances_path": cloud["instances_path"],
                "backends": "file,rbd" if rbd else "file",
            },
        }
        # Only with a second host (it changes nothing DevStack sets).
        overlay["compute"].update(self._transfer_options(cloud, 0))
        if rbd:
            overlay["rbd"] = {
                "ceph_conf": cloud["ceph"]["conf"],
                "rbd_user": cloud["ceph"]["user"],
                "pool": cloud["ceph"]["pool"],
            }
        overlay_path = self.layout.root / "overlay.json"
        _write_private(overlay_path, json.dumps(overlay, default=str))
        try:
            self._run(
                "write snapmanager.conf",
                [
                    VENV / "bin" / "python",
                    TOP / "tools" / "testenv" / "write_config.py",
                    "--database",
                    DATABASE,
                    "--overlay",
                    overlay_path,
                    self._env_path,
                    self.conf_path,
                ],
            )
        finally:
            overlay_path.unlink(missing_ok=True)

    @staticmethod
    def _transfer_options(cloud, index):
        """How the agents of a two-host cloud copy a file-backed snapshot
        from one host's store to the other's: with ssh to the holder's
        address, as Nova copies disks (tools/minicloud/hosts.py)."""
        hosts = cloud.get("hosts") or ()
        if len(hosts) < 2:
            return {}
        return {
            "snapshot_transfer_address": hosts[index]["address"],
            "snapshot_transfer_ssh_config": hosts[index]["ssh_config"],
        }

    def _drop_database(self):
        self._run(
            "drop database %s" % DATABASE,
            [
                VENV / "bin" / "python",
                "-c",
                _DROP_DATABASE_SCRIPT,
                self._env_path,
                DATABASE,
            ],
        )

    def _write_openrc(self, cloud):
        self.openrc_path.write_text(
            "# Source me: `openstack` is then the project venv's, with\n"
            "# Snapmanager's plugin, and `--os-cloud admin|demo|"
            "demo-reader|other`\n"
            "# picks a user of the mini-cloud.\n"
            "export PATH=%s:$PATH\n"
            "export OS_CLIENT_CONFIG_FILE=%s\n"
            % (VENV / "bin", cloud["clouds_yaml"])
        )

    # -- processes -------------------------------------------------------

    def _start(self, state, names):
        started = time.time()
        for name in names:
            self._spawn(state, name)
        self._save_state(state)
        if "snapmanager-api" in names:
            self._wait(
                "snapmanager-api to answer on %s" % API_URL,
                lambda: (
                    rest.request("GET", API_URL + "/", timeout=2)[0] == 200
                ),
                state,
                ["snapmanager-api"],
            )
            self._say("snapmanager-api answers on %s" % API_URL)
        beating = [name for name in names if name in HEARTBEATS]
        if beating:
            self._wait_heartbeats(state, started, beating, list(names))

    def _wait_heartbeats(self, state, started, binaries, watch, conf=None):
        waiter = subprocess.Popen(
            [
                str(VENV / "bin" / "python"),
                "-c",
                _HEARTBEAT_SCRIPT,
                str(conf or self.conf_path),
                repr(started),
                *binaries,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self._child_env(),
        )

        def reported():
            if waiter.poll() is None:
                return False
            if waiter.returncode:
                raise StackError(
                    "reading the heartbeats failed:\n%s"
                    % waiter.stdout.read().decode(errors="replace")[-3000:]
                )
            return True

        try:
            self._wait(
                "the heartbeats of %s" % ", ".join(binaries),
                reported,
                state,
                watch,
            )
        finally:
            if waiter.poll() is None:
                waiter.kill()
            waiter.wait()
            waiter.stdout.close()
        self._say("%s report" % ", ".join(binaries))

    # -- the public operations -------------------------------------------

    def up(self, cloud, env, debug=False):
        """Bring Snapmanager up on the cloud; returns the stack's info.

        :param cloud: what `MiniCloud.up()` returned (minicloud.json).
        :param env: the test environment's entries: mariadb, rabbitmq,
            libvirt, and ceph in RBD mode.
        """
        state = self._up(cloud, env, debug)
        if len(cloud.get("hosts", ())) > 1:
            self._ensure_compute_2(state, cloud)
        elif self._alive(state["processes"].get(COMPUTE_2)):
            self._stop(state, [COMPUTE_2])
        return self._write_info(state, cloud)

    def _ensure_compute_2(self, state, cloud):
        """snapmanager-compute beside host 2's nova-compute."""
        host = cloud["hosts"][1]
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(self.conf_path)
        parser["DEFAULT"].update(
            host=host["name"], state_path=str(self.layout.root / "state-2")
        )
        parser["compute"]["libvirt_uri"] = host["libvirt_uri"]
        parser["compute"].update(self._transfer_options(cloud, 1))
        text = io.StringIO()
        parser.write(text)
        old = self.conf_2_path.read_text() if self.conf_2_path.exists() else ""
        if old != text.getvalue():
            _write_private(self.conf_2_path, text.getvalue())
            self._stop(state, [COMPUTE_2])
        if self._alive(state["processes"].get(COMPUTE_2)):
            return
        started = time.time()
        self._spawn(state, COMPUTE_2)
        self._wait_heartbeats(
            state,
            started,
            ["snapmanager-compute"],
            [COMPUTE_2],
            conf=self.conf_2_path,
        )

    def _up(self, cloud, env, debug):
        self._t0 = time.monotonic()
        state = self._load_state()
        state.setdefault("processes", {})
        fingerprint = {
            "code": _code_stamp(),
            "foundation": {
                name: env[name] for name in ("mariadb", "rabbitmq", "libvirt")
            },
            "projects": cloud["projects"],
            "host": cloud["host"],
            "instances_path": cloud["instances_path"],
            "debug": debug,
            # A second host changes host 1's agent's transfer options.
            "hosts": [host["name"] for host in cloud.get("hosts", ())],
        }
        running = self._running(state)
        same_base = state.get("fingerprint") == fingerprint
        if set(SERVICES) <= running and same_base:
            if (state.get("mode"), state.get("ceph")) == (
                cloud["mode"],
                cloud["ceph"],
            ):
                self._say("already up")
                return state
            self._switch_compute(state, cloud, env, debug)
            return state
        if running:
            self._say("restarting: %s" % ", ".join(sorted(running)))
            self._stop(state, [COMPUTE_2, *reversed(SERVICES)])
        keystone.register(cloud["projects"], API_URL)
        self._say(
            "keystone: service %s, user %s"
            % (keystone.SERVICE_TYPE, keystone.SERVICE_USER)
        )
        if state.get("projects") != cloud["projects"]:
            # A new cloud (or a first start): rows naming another cloud's
            # servers would only be work for the conductor to fail at.
            self._write_env(cloud, env)
            self._drop_database()
        self._render(cloud, env, debug)
        self._run(
            "snapmanager-manage db sync",
            [
                VENV / "bin" / "snapmanager-manage",
                "--config-file",
                self.conf_path,
                "db",
                "sync",
            ],
        )
        state.update(
            fingerprint=fingerprint,
            projects=cloud["projects"],
            mode=cloud["mode"],
            ceph=cloud["ceph"],
        )
        self._save_state(state)
        try:
            self._start(state, SERVICES)
        except BaseException:
            self._say("failed: stopping what started")
            self._stop(state, list(reversed(SERVICES)))
            raise
        self._write_openrc(cloud)
        return state

    def _switch_compute(self, state, cloud, env, debug):
        self._say(
            "restarting snapmanager-compute: %s to %s disks"
            % (state.get("mode"), cloud["mode"])
        )
        self._stop(state, ["snapmanager-compute", COMPUTE_2])
        self._render(cloud, env, debug)
        state.update(mode=cloud["mode"], ceph=cloud["ceph"])
        self._save_state(state)
        try:
            self._start(state, ["snapmanager-compute"])
        except BaseException:
            self._stop(state, ["snapmanager-compute"])
            raise

    def crash_agents(self):
        """SIGKILL the compute agents of both hosts, as a crash would:
        no clean shutdown, nothing finished. For recovery tests;
        :meth:`start_agents` brings them back."""
        names = ["snapmanager-compute", COMPUTE_2]
        state = self._load_state()
        records = [state["processes"].get(name) for name in names]
        self._stop(state, names, first=signal.SIGKILL)
        if any(self._alive(record) for record in records):
            raise StackError("a compute agent outlived SIGKILL")

    def start_agents(self, cloud):
        """Start the compute agents that are not running (after
        :meth:`crash_agents`) and wait for their heartbeats."""
        state = self._load_state()
        if not self._alive(state["processes"].get("snapmanager-compute")):
            self._start(state, ["snapmanager-compute"])
        if len(cloud.get("hosts", ())) > 1:
            self._ensure_compute_2(state, cloud)

    def down(self, purge=False):
        """Stop the services; with `purge`, drop the database and remove
        the directory too."""
        self._stop_services((*SERVICES, COMPUTE_2))
        if not purge:
            return
        if self._env_path.exists() and (VENV / "bin" / "python").exists():
            try:
                self._drop_database()
            except minicloud.MiniCloudError as exc:
                # The test environment may be down already.
                self._say("could not drop %s: %s" % (DATABASE, exc))
        shutil.rmtree(self.layout.root, ignore_errors=True)
        self._say("removed %s" % self.layout.root)

    def status(self):
        state = self._load_state()
        names = SERVICES
        if COMPUTE_2 in state.get("processes", {}):
            names += (COMPUTE_2,)
        processes = self._processes_status(state, names)
        return {
            "dir": str(self.layout.root),
            "api_url": API_URL,
            "mode": state.get("mode"),
            "conf": str(self.conf_path),
            "processes": processes,
        }

    def _write_info(self, state, cloud):
        info = {
            "dir": str(self.layout.root),
            "api_url": API_URL,
            "service_type": keystone.SERVICE_TYPE,
            "conf": str(self.conf_path),
            "database": DATABASE,
            "host": cloud["host"],
            "mode": state["mode"],
            "clouds_yaml": cloud["clouds_yaml"],
            "openrc": str(self.openrc_path),
            "openstack": str(VENV / "bin" / "openstack"),
            "logs": {
                name: str(self.log_path(name))
                for name in (*SERVICES, COMPUTE_2)
            },
            "conf_2": str(self.conf_2_path),
        }
        tmp = self.info_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(info, indent=2, sort_keys=True))
        tmp.replace(self.info_path)
        self._say("up: %s disks, API on %s" % (state["mode"], API_URL))
        return info
