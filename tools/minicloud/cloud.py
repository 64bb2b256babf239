"""Bring the mini-cloud up, take it down, tell what runs.

`MiniCloud.up()` installs what is missing, renders the configuration,
creates and syncs the databases, bootstraps Keystone and starts every
service as a detached process whose PID (and start time, so that a reused
PID is never mistaken for ours) goes to `state.json`. `down()` stops those
processes and nothing else. The databases, keys and disks stay between a
`down` and the next `up`, which then only starts the services again;
`down(purge=True)` removes them too.

Standard library only: this runs with the system Python before the
mini-cloud's venv exists, and the test fixtures import it into the
project's venv.
"""

import base64
import concurrent.futures
import hashlib
import importlib.util
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

from . import config
from . import hosts
from . import rest

TOP = pathlib.Path(__file__).resolve().parents[2]
TESTENV = TOP / "tools" / "testenv"
# The mini-cloud's own venv: what it installs, and the pins every install
# path of the project uses. A change to either updates the venv at the
# next `up`.
REQUIREMENTS = pathlib.Path(__file__).with_name("requirements.txt")
CONSTRAINTS = TOP / "upper-constraints.txt"

DATABASES = (
    "minicloud_keystone",
    "minicloud_placement",
    "minicloud_glance",
    "minicloud_nova_api",
    "minicloud_nova",
    "minicloud_nova_cell0",
)

# Services in start order; `down` stops them in reverse. ceph-mgr runs
# only in RBD mode, and only when the test Ceph has no manager of its own.
SERVICES = (
    "network",
    "ceph-mgr",
    "keystone",
    "placement",
    "glance",
    "nova-conductor",
    "nova-scheduler",
    "nova-api",
    "nova-compute",
)

CORE_SERVICES = tuple(s for s in SERVICES if s != "ceph-mgr")
CEPH_MGR_ID = "minicloud"

# How long one service may take to answer. Generous: a 2-core CI machine
# starting five Python services at once is slow, not broken.
START_TIMEOUT = 180
STOP_TIMEOUT = 15
LOG_TAIL_LINES = 40


class MiniCloudError(Exception):
    """The mini-cloud did not come up; the message says why and shows
    the end of the relevant service log."""


def _write_fernet_repository(path):
    """A Keystone key repository as `keystone-manage fernet_setup` (and
    `credential_setup`) leaves it: a staged key 0 and a primary key 1,
    each 32 random bytes in URL-safe base64, readable by us alone.

    Writing them directly saves two keystone-manage runs, about five
    seconds of CPU on every provisioning.
    """
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    for index in ("0", "1"):
        key = path / index
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(base64.urlsafe_b64encode(os.urandom(32)))


def default_dir():
    explicit = os.environ.get("SNAPMANAGER_MINICLOUD_DIR")
    if explicit:
        return pathlib.Path(explicit)
    testenv_dir = os.environ.get("SNAPMANAGER_TESTENV_DIR")
    return (
        pathlib.Path(testenv_dir) if testenv_dir else TOP / ".testenv"
    ) / "minicloud"


def log_tail(path, lines=LOG_TAIL_LINES):
    """The end of a service's log, headed by its path (testenv's format)."""
    return MiniCloud._testenv().log_tail(path, lines)


def _proc_start_time(pid):
    """The kernel's start time of `pid`, or None if it is gone or a zombie.

    Comparing it with the recorded value tells our process from an
    unrelated one that got the same PID later.
    """
    stat = MiniCloud._testenv()._proc_stat(pid)
    if stat is None or stat[0] in ("Z", "X"):
        return None
    return stat[1]


class MiniCloud:
    def __init__(self, directory=None, out=sys.stderr):
        self.layout = config.Layout(
            pathlib.Path(directory or default_dir()).resolve()
        )
        self.out = out
        self._t0 = time.monotonic()
        # Popen objects of the services this process started, so that it
        # reaps them when it stops them (the pytest session does both).
        self._children = {}
        self._lock = threading.RLock()

    # -- small helpers -------------------------------------------------

    def _say(self, message):
        elapsed = time.monotonic() - self._t0
        print("minicloud [%5.1fs] %s" % (elapsed, message), file=self.out)
        self.out.flush()

    def _load_state(self):
        try:
            return json.loads(self.layout.state_file.read_text())
        except (OSError, ValueError):
            return {}

    def _save_state(self, state):
        # The start-up chains run in threads and all record their
        # processes here.
        with self._lock:
            self.layout.root.mkdir(parents=True, exist_ok=True)
            tmp = self.layout.state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
            tmp.replace(self.layout.state_file)

    def log_path(self, name):
        return self.layout.log / ("%s.log" % name)

    def _child_env(self, extra=None):
        env = {
            k: v
            for k, v in os.environ.items()
            # The caller's venv, Python path or cloud selection must not
            # leak into the services.
            if not k.startswith(("PYTHON", "VIRTUAL_ENV", "OS_"))
        }
        env["PATH"] = "%s:%s" % (self.layout.venv / "bin", env["PATH"])
        env.update(extra or {})
        return env

    def _run(self, name, argv, env=None, timeout=START_TIMEOUT * 2):
        """Run a set-up command; its output goes to log/setup.log."""
        self.layout.log.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        try:
            result = subprocess.run(
                [str(a) for a in argv],
                env=self._child_env(env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=self.layout.root,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as exc:
            raise MiniCloudError(
                "%s did not finish within %ds" % (name, timeout)
            ) from exc
        output = result.stdout.decode(errors="replace")
        with open(self.log_path("setup"), "a") as log:
            log.write(
                "### %s: %s\n%s\n" % (name, " ".join(map(str, argv)), output)
            )
        if result.returncode:
            tail = "\n".join(output.splitlines()[-LOG_TAIL_LINES:])
            raise MiniCloudError(
                "%s failed (exit %d):\n%s" % (name, result.returncode, tail)
            )
        self._say("%s (%.1fs)" % (name, time.monotonic() - started))
        return output

    def _venv_python(self, name, script, *args):
        """Run a snippet with the venv's Python (libvirt, rbd, PyMySQL)."""
        return self._run(
            name, [self.layout.bin("python"), "-c", script, *args]
        )

    # -- installation --------------------------------------------------

    def install(self):
        """Debian packages and the mini-cloud's venv, if missing."""
        self._run(
            "install-packages", ["bash", TESTENV / "install-packages.sh"]
        )
        venv = self.layout.venv
        python = venv / "bin" / "python"
        interpreter = self._run(
            "pick-python", [TESTENV / "pick-python.sh"]
        ).strip()
        want = hashlib.sha1(
            REQUIREMENTS.read_bytes()
            + CONSTRAINTS.read_bytes()
            + interpreter.encode()
        ).hexdigest()
        stamp = venv / ".minicloud-requirements"
        if python.exists() and stamp.exists() and stamp.read_text() == want:
            return
        stamp.unlink(missing_ok=True)
        if not python.exists():
            self._run("venv", [interpreter, "-m", "venv", venv])
        # uv installs the services in seconds where pip takes minutes; it
        # is pinned by the constraints like everything else.
        self._run(
            "pip install uv",
            [python, "-m", "pip", "install", "-q", "-c", CONSTRAINTS, "uv"],
        )
        # Byte-compiling once here saves each of the ten Python processes
        # of every start about three seconds of CPU.
        self._run(
            "uv pip install",
            [
                python,
                "-m",
                "uv",
                "pip",
                "install",
                "-q",
                "--compile-bytecode",
                "--python",
                python,
                "-c",
                CONSTRAINTS,
                "-r",
                REQUIREMENTS,
            ],
        )
        # Ceph's `rados` and `rbd` are not on PyPI: link Debian's builds
        # for the same CPython ABI into the venv, as setup-venv.sh does.
        self._run(
            "link Ceph bindings",
            ["bash", TESTENV / "link-ceph-bindings.sh", python],
        )
        stamp.write_text(want)

    # -- the foundation: MariaDB, RabbitMQ, libvirt, Ceph ----------------

    @staticmethod
    def _testenv():
        # One copy per process, under the name the test fixtures use too:
        # the module keeps the record of the daemons it started.
        name = "snapmanager_testenv"
        module = sys.modules.get(name)
        if module is None:
            spec = importlib.util.spec_from_file_location(
                name, TESTENV / "testenv.py"
            )
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        return module

    def foundation(self, rbd, env=None):
        """The test environment's entries this cloud needs.

        `env` maps component names to the entries a caller already has
        (the pytest fixtures pass theirs, so that the test environment's
        own fixtures stay the ones that stop it); the others are brought
        up through tools/testenv/testenv.py.
        """
        env = dict(env or {})
        wanted = ["mariadb", "rabbitmq", "libvirt"] + (["ceph"] if rbd else [])
        missing = [c for c in wanted if c not in env]
        if missing:
            testenv = self._testenv()
            for component in missing:
                try:
                    env[component] = testenv.ensure_up(component)
                except testenv.TestEnvError as exc:
                    raise MiniCloudError(
                        "the test environment's %s: %s" % (component, exc)
                    ) from exc
        return {c: env[c] for c in wanted}

    # -- configuration -------------------------------------------------

    def _render(self, env, state, debug):
        layout = self.layout
        server_url = env["mariadb"]["url"]
        for name in ("keystone", "placement", "glance", "nova"):
            (layout.etc / name).mkdir(parents=True, exist_ok=True)
        config.write_ini(
            layout.conf("keystone", "keystone.conf"),
            config.keystone_conf(layout, server_url, debug),
        )
        config.write_ini(
            layout.conf("placement", "placement.conf"),
            config.placement_conf(layout, server_url, debug),
        )
        config.write_ini(
            layout.conf("glance", "glance-api.conf"),
            config.glance_conf(layout, server_url, debug),
        )
        # The paste pipelines are the ones the packages ship.
        venv_etc = layout.venv / "etc"
        shutil.copyfile(
            venv_etc / "glance" / "glance-api-paste.ini",
            layout.conf("glance", "glance-api-paste.ini"),
        )
        shutil.copyfile(
            venv_etc / "nova" / "api-paste.ini",
            layout.conf("nova", "api-paste.ini"),
        )
        config.write_ini(
            layout.conf("nova", "nova-db.conf"),
            config.nova_db_conf(server_url),
        )
        self._render_nova(env, state, debug)

    def _render_nova(self, env, state, debug):
        """nova.conf of host 1 (and of host 2 when it is set up)."""
        sections = self._nova_sections(env, state, debug)
        sections["libvirt"].update(hosts.migration_options(self.layout, 1))
        config.write_ini(self.layout.conf("nova", "nova.conf"), sections)
        if state.get("hosts", 1) > 1:
            sections = self._nova_sections(env, state, debug)
            config.write_ini(
                hosts.nova_conf_path(self.layout),
                hosts.nova_conf_host2(self.layout, sections),
            )

    def _nova_sections(self, env, state, debug):
        rbd = None
        if state["mode"] == "rbd":
            rbd = {
                "conf": self._ceph_conf(env["ceph"]),
                "pool": env["ceph"]["pool"],
                "user": env["ceph"]["user"],
                "secret_uuid": state["secret_uuid"],
            }
        return config.nova_conf(
            self.layout,
            host=state["host"],
            transport_url=env["rabbitmq"]["transport_url"],
            libvirt_uri=env["libvirt"]["uri"],
            virt_type=state["virt_type"],
            rbd=rbd,
            debug=debug,
        )

    def _ceph_conf(self, ceph):
        """The test Ceph's config plus its keyring, for Nova.

        Nova opens the cluster with `rbd_user` and this file alone, so the
        keyring must be named in it.
        """
        text = pathlib.Path(ceph["conf"]).read_text()
        if "keyring" in text or not ceph.get("keyring"):
            return ceph["conf"]
        text += "\n[client.%s]\nkeyring = %s\n" % (
            ceph["user"],
            ceph["keyring"],
        )
        path = self.layout.etc / "ceph" / "ceph.conf"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    # -- processes -----------------------------------------------------

    def _argv(self, state, name):
        layout = self.layout
        nova_conf = layout.conf("nova", "nova.conf")
        nova_db = layout.conf("nova", "nova-db.conf")
        if name == "network":
            return [
                layout.bin("python"),
                pathlib.Path(__file__).parent / "netstub.py",
                "--host",
                config.HOST_IP,
                "--port",
                config.PORTS["network"],
            ], {}
        if name in ("nova-conductor", "nova-scheduler"):
            return [
                layout.bin(name),
                "--config-file",
                nova_conf,
                "--config-file",
                nova_db,
            ], {}
        if name in hosts.SERVICES:
            return self._host2_argv(state, name)
        if name == "nova-compute":
            return [layout.bin(name), "--config-file", nova_conf], {
                "PATH": self._compute_path()
            }
        if name == "ceph-mgr":
            ceph = state["foundation"]["ceph"]
            mgr_data = layout.data / "ceph-mgr"
            return [
                "ceph-mgr",
                "--foreground",
                "--conf",
                ceph["conf"],
                "--id",
                CEPH_MGR_ID,
                "--keyring",
                mgr_data / "keyring",
                "--mgr-data",
                mgr_data,
                "--mgr-module-path",
                mgr_data / "no-modules",
                "--log-file",
                self.log_path(name),
            ], {}
        module, env, extra = {
            "keystone": (
                "keystone.wsgi.api:application",
                {"OS_KEYSTONE_CONFIG_DIR": layout.etc / "keystone"},
                [],
            ),
            "placement": (
                "placement.wsgi.api:application",
                {"OS_PLACEMENT_CONFIG_DIR": layout.etc / "placement"},
                [],
            ),
            "glance": (
                "glance.wsgi.api:application",
                {"OS_GLANCE_CONFIG_DIR": layout.etc / "glance"},
                # Nova uploads snapshots chunked; uwsgi's HTTP socket
                # refuses chunked bodies without this, and chunks larger
                # than its 1 MiB default limit (an RBD disk's export).
                ["--http-chunked-input", "--chunked-input-limit", "67108864"],
            ),
            "nova-api": (
                "nova.wsgi.osapi_compute:application",
                {
                    "OS_NOVA_CONFIG_DIR": layout.etc / "nova",
                    "OS_NOVA_CONFIG_FILES": (
                        "api-paste.ini;nova.conf;nova-db.conf"
                    ),
                },
                [],
            ),
        }[name]
        argv = [
            layout.bin("uwsgi"),
            "--http-socket",
            "%s:%d" % (config.HOST_IP, config.PORTS[name]),
            "--module",
            module,
            "--virtualenv",
            layout.venv,
            "--need-app",
            "--die-on-term",
            "--enable-threads",
            "--processes",
            "1",
            "--threads",
            "4",
            "--buffer-size",
            "65535",
            # uwsgi's HTTP socket resets connections that clients reuse;
            # keystoneauth reuses them, so make every answer the last.
            "--add-header",
            "Connection: close",
            *extra,
        ]
        return argv, env

    def _spawn(self, state, name):
        argv, env = self._argv(state, name)
        argv = [str(a) for a in argv]
        self.layout.log.mkdir(parents=True, exist_ok=True)
        log = self.log_path(name)
        with open(log, "ab") as out:
            out.write(
                b"\n### minicloud started %s at %s\n"
                % (name.encode(), time.strftime("%F %T").encode())
            )
            out.flush()
            proc = subprocess.Popen(
                argv,
                env=self._child_env({k: str(v) for k, v in env.items()}),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.layout.root,
                # Its own session and process group: no terminal signal
                # reaches it, and `down` stops its helpers with it.
                start_new_session=True,
            )
        record = {
            "pid": proc.pid,
            "start": _proc_start_time(proc.pid),
            "started_at": time.time(),
            "argv": argv,
            "log": str(log),
        }
        with self._lock:
            self._children[proc.pid] = proc
            state["processes"][name] = record
        self._save_state(state)
        return proc.pid

    def _alive(self, record):
        if not record:
            return False
        start = _proc_start_time(record["pid"])
        return start is not None and start == record["start"]

    def _running(self, state):
        return {
            name
            for name, record in state.get("processes", {}).items()
            if self._alive(record)
        }

    def _check_alive(self, state, names):
        for name in names:
            if not self._alive(state["processes"].get(name)):
                raise MiniCloudError(
                    "%s exited.\n%s" % (name, log_tail(self.log_path(name)))
                )

    def _wait(self, what, check, state, watch, timeout=START_TIMEOUT):
        """Poll `check` until true; fail early if a watched service dies."""
        deadline = time.monotonic() + timeout
        last_error = None
        while True:
            self._check_alive(state, watch)
            try:
                if check():
                    return
            except (OSError, rest.HttpError) as exc:
                last_error = exc
            if time.monotonic() > deadline:
                tails = "\n".join(log_tail(self.log_path(n)) for n in watch)
                raise MiniCloudError(
                    "timed out after %ds waiting for %s (last error: %s)\n%s"
                    % (timeout, what, last_error, tails)
                )
            time.sleep(0.25)

    def _stop(self, state, names, first=signal.SIGTERM):
        """Send ``first`` (SIGTERM; SIGKILL for a crash) to each process
        group, wait, then SIGKILL what is left."""
        records = {
            n: state["processes"][n]
            for n in names
            if self._alive(state["processes"].get(n))
        }
        for record in records.values():
            try:
                os.killpg(record["pid"], first)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + STOP_TIMEOUT
        for name, record in records.items():
            while self._alive(record) and time.monotonic() < deadline:
                self._reap(record["pid"])
                time.sleep(0.1)
            if self._alive(record):
                self._say(
                    "%s ignored %s: killing it"
                    % (name, signal.Signals(first).name)
                )
                try:
                    os.killpg(record["pid"], signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self._reap(record["pid"], block=True)
        for name in names:
            state["processes"].pop(name, None)
        self._save_state(state)

    def _reap(self, pid, block=False):
        proc = self._children.get(pid)
        if proc is None:
            return
        try:
            proc.wait(timeout=STOP_TIMEOUT if block else 0)
        except subprocess.TimeoutExpired:
            return
        self._children.pop(pid, None)

    # -- databases -----------------------------------------------------

    def _databases(self, server_url, action):
        """`exists` (all of ours are there), `create` or `drop`."""
        script = r"""
import sys
import pymysql
from sqlalchemy.engine import make_url
url = make_url(sys.argv[1])
action, names = sys.argv[2], sys.argv[3:]
conn = pymysql.connect(host=url.host, port=url.port or 3306,
                       user=url.username, password=url.password or "",
                       unix_socket=url.query.get("unix_socket"))
with conn.cursor() as cur:
    if action == "exists":
        cur.execute("SHOW DATABASES")
        have = {row[0] for row in cur.fetchall()}
        print("yes" if set(names) <= have else "no")
    for name in names:
        if action in ("drop", "create"):
            cur.execute("DROP DATABASE IF EXISTS `%s`" % name)
        if action == "create":
            cur.execute("CREATE DATABASE `%s` CHARACTER SET utf8" % name)
"""
        output = self._venv_python(
            "databases: %s" % action, script, server_url, action, *DATABASES
        )
        return output.strip().endswith("yes")

    # -- Nova's leftovers in libvirt and Ceph --------------------------

    def _remove_guests(self, state, env):
        """Destroy the domains (and RBD disks) of this cloud's projects.

        Needed before the databases are made anew: Nova numbers domains
        from instance-00000001 again and would collide with the old ones.
        A domain is ours when Nova's metadata names one of our projects.
        """
        projects = list(state.get("projects", {}).values())
        if not projects or "libvirt" not in env:
            return
        ceph = env.get("ceph") or {}
        script = r"""
import json
import sys
import xml.etree.ElementTree as ET
import libvirt
args = json.loads(sys.argv[1])
conn = libvirt.open(args["uri"])
NOVA = "{http://openstack.org/xmlns/libvirt/nova/1.1}"
gone = []
for dom in conn.listAllDomains():
    root = ET.fromstring(dom.XMLDesc())
    project = root.find(".//%sowner/%sproject" % (NOVA, NOVA))
    if project is None or project.get("uuid") not in args["projects"]:
        continue
    if dom.isActive():
        dom.destroy()
    flags = (libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
             | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
             | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
             | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA)
    dom.undefineFlags(flags)
    gone.append(dom.UUIDString())
if args.get("ceph") and gone:
    import rados
    import rbd
    ceph = args["ceph"]
    with rados.Rados(conffile=ceph["conf"], rados_id=ceph["user"]) as cluster:
        with cluster.open_ioctx(ceph["pool"]) as ioctx:
            for name in rbd.RBD().list(ioctx):
                if name.split("_disk")[0] not in gone:
                    continue
                with rbd.Image(ioctx, name) as image:
                    for snap in list(image.list_snaps()):
                        if image.is_protected_snap(snap["name"]):
                            image.unprotect_snap(snap["name"])
                        image.remove_snap(snap["name"])
                rbd.RBD().remove(ioctx, name)
print("removed %d guests" % len(gone))
"""
        args = {
            "uri": env["libvirt"]["uri"],
            "projects": projects,
            "ceph": {
                "conf": str(self._ceph_conf(ceph)),
                "pool": ceph["pool"],
                "user": ceph["user"],
            }
            if ceph
            else None,
        }
        self._venv_python("remove old guests", script, json.dumps(args))

    def _define_ceph_secret(self, env, state):
        """An ephemeral, private libvirt secret with the Ceph key.

        Ephemeral: it lives only in libvirtd's memory, so it is defined
        again on every start in RBD mode.
        """
        script = r"""
import base64
import configparser
import sys
import libvirt
uri, uuid, keyring, user = sys.argv[1:5]
parser = configparser.ConfigParser()
parser.read(keyring)
key = parser["client.%s" % user]["key"].strip()
conn = libvirt.open(uri)
xml = ("<secret ephemeral='yes' private='yes'><uuid>%s</uuid>"
       "<usage type='ceph'><name>minicloud client.%s %s</name></usage>"
       "</secret>" % (uuid, user, uuid))
secret = conn.secretDefineXML(xml)
secret.setValue(base64.b64decode(key))
"""
        ceph = env["ceph"]
        self._venv_python(
            "libvirt secret for Ceph",
            script,
            env["libvirt"]["uri"],
            state["secret_uuid"],
            ceph["keyring"],
            ceph["user"],
        )

    # -- provisioning --------------------------------------------------

    def _manage(self, name, *args):
        layout = self.layout
        if name == "nova-manage":
            conf = [
                "--config-file",
                layout.conf("nova", "nova.conf"),
                "--config-file",
                layout.conf("nova", "nova-db.conf"),
            ]
        elif name == "keystone-manage":
            conf = ["--config-file", layout.conf("keystone", "keystone.conf")]
        elif name == "placement-manage":
            conf = [
                "--config-file",
                layout.conf("placement", "placement.conf"),
            ]
        else:
            conf = ["--config-file", layout.conf("glance", "glance-api.conf")]
        return self._run(
            "%s %s" % (name, " ".join(args)),
            [layout.bin(name), *conf, *args],
        )

    def _keystone_chain(self, state, provision):
        if provision:
            self._manage("keystone-manage", "db_sync")
            for repo in ("fernet-keys", "credential-keys"):
                _write_fernet_repository(self.layout.etc / "keystone" / repo)
            identity = config.url("keystone", "/v3/")
            self._manage(
                "keystone-manage",
                "bootstrap",
                "--bootstrap-password",
                config.PASSWORD,
                "--bootstrap-admin-url",
                identity,
                "--bootstrap-internal-url",
                identity,
                "--bootstrap-public-url",
                identity,
                "--bootstrap-region-id",
                config.REGION,
            )
        self._start_http(state, "keystone", config.AUTH_URL)
        if provision:
            state["projects"] = rest.Keystone(self._admin_token()).setup()
            self._save_state(state)
            self._say("keystone: projects, users and catalog")

    def _placement_chain(self, state, provision):
        if provision:
            self._manage("placement-manage", "db", "sync")
        self._start_http(state, "placement", config.url("placement"))

    def _glance_chain(self, state, provision):
        if provision:
            self._manage("glance-manage", "db_sync")
        self._start_http(state, "glance", config.url("glance"))

    def _nova_chain(self, state, provision):
        if provision:
            self._manage("nova-manage", "api_db", "sync")
            self._manage("nova-manage", "cell_v2", "map_cell0")
            self._manage(
                "nova-manage", "cell_v2", "create_cell", "--name", "cell1"
            )
            self._manage("nova-manage", "db", "sync")
        self._spawn(state, "nova-conductor")
        self._spawn(state, "nova-scheduler")
        self._start_http(state, "nova-api", config.url("nova-api"))

    def _start_http(self, state, name, url):
        self._spawn(state, name)
        self._wait(name, lambda: rest.answers(url), state, [name])
        self._say("%s answers on %s" % (name, url))

    def _admin_token(self):
        return rest.token("admin", "admin")

    def _check_ports(self, names):
        for name in names:
            port = config.PORTS.get(name)
            if port is None:
                continue
            with socket.socket() as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind((config.HOST_IP, port))
                except OSError as exc:
                    raise MiniCloudError(
                        "port %d for %s is taken (%s): another cloud or "
                        "a previous run not stopped with `down`?"
                        % (port, name, exc)
                    ) from exc

    def _make_image(self):
        path = self.layout.data / "tiny.qcow2"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # An empty 16 MiB disk: no OS, the guest sits in its firmware,
            # which is all Nova and Snapmanager need of it.
            self._run(
                "qemu-img create",
                ["qemu-img", "create", "-q", "-f", "qcow2", path, "16M"],
            )
        return path

    def _ceph(self, env, *args):
        """The `ceph` CLI as the test Ceph's admin; returns its stdout."""
        ceph = env["ceph"]
        result = subprocess.run(
            [
                "ceph",
                "--conf",
                ceph["conf"],
                "--id",
                ceph["user"],
                "--keyring",
                ceph["keyring"],
                *args,
            ],
            env=self._child_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if result.returncode:
            raise MiniCloudError(
                "ceph %s failed: %s" % (" ".join(args), result.stderr[-2000:])
            )
        return result.stdout

    def _ensure_ceph_mgr(self, state, env):
        """A Ceph manager, which Nova's RBD mode needs.

        Nova sizes the compute node's disk from `ceph df`, and since
        Luminous only a ceph-mgr knows the pools' usage: without one the
        pool is missing from `df` and every resource update fails with
        "Pool vms could not be found". The test Ceph runs none (the
        functional tests need none), so this cloud runs its own, as a
        client of that cluster, and stops it with the rest.

        `df` is answered by the manager's core, not by its Python modules,
        so it runs with none (an empty module path): 35 MB and ready in
        half a second instead of 300 MB, 3 s and a share of the two CPUs
        all the time. Ceph reports the missing always-on modules as the
        health error MGR_MODULE_ERROR; it is muted (until it clears) so
        that the test cluster's health still means something.
        """
        pool = env["ceph"]["pool"]

        def pool_reported():
            df = json.loads(self._ceph(env, "df", "--format", "json"))
            return any(p["name"] == pool for p in df["pools"])

        def modules_reported():
            health = json.loads(
                self._ceph(env, "health", "detail", "--format", "json")
            )
            return "MGR_MODULE_ERROR" in health.get("checks", {})

        if not self._alive(state["processes"].get("ceph-mgr")):
            stat = json.loads(
                self._ceph(env, "mgr", "stat", "--format", "json")
            )
            # The monitors remember a manager for a while after it died:
            # an active one of our name is the last of ours.
            if stat.get("available") and stat["active_name"] != CEPH_MGR_ID:
                return
            mgr_data = self.layout.data / "ceph-mgr"
            (mgr_data / "no-modules").mkdir(parents=True, exist_ok=True)
            self._ceph(
                env,
                "auth",
                "get-or-create",
                "mgr.%s" % CEPH_MGR_ID,
                "mon",
                "allow profile mgr",
                "osd",
                "allow *",
                "mds",
                "allow *",
                "-o",
                str(mgr_data / "keyring"),
            )
            self._spawn(state, "ceph-mgr")
        watch = ["ceph-mgr"]
        self._wait(
            "ceph-mgr to report pool %s" % pool, pool_reported, state, watch
        )
        self._wait(
            "ceph-mgr's module report",
            modules_reported,
            state,
            watch,
            timeout=30,
        )
        self._ceph(env, "health", "mute", "MGR_MODULE_ERROR")
        self._say("ceph-mgr reports pool %s" % pool)

    def _start_compute(self, state, env):
        if state["mode"] == "rbd":
            if state.get("ceph") != env["ceph"]:
                # A new cluster (the test environment restarted Ceph):
                # our manager and secret belong to the old one.
                self._stop(state, ["ceph-mgr"])
            self._ensure_ceph_mgr(state, env)
            self._define_ceph_secret(env, state)
            state["ceph"] = env["ceph"]
        elif "ceph-mgr" in state["processes"]:
            # File-backed disks do not touch Ceph.
            self._stop(state, ["ceph-mgr"])
        started = time.time()
        self._spawn(state, "nova-compute")
        return started

    def _wait_compute(self, state, started, token, host=None):
        """Until the compute host reports in after `started`, mapped."""
        host = host or state["host"]
        watch = [
            "nova-compute" if host == state["host"] else "nova-compute-2",
            "nova-conductor",
        ]

        def reported():
            for service in rest.compute_services(token):
                if (
                    service["binary"] == "nova-compute"
                    and service["host"] == host
                    and service["state"] == "up"
                    and service["updated_at"]
                    # Whole seconds in the database: a heartbeat of the
                    # process just stopped may share the second of
                    # `started`, so only a later second proves the new
                    # one reports.
                    and rest.utc_seconds(service["updated_at"]) > started
                ):
                    return True
            return False

        # Each host is mapped to the cell once, when it first registers.
        key = "discovered" if host == state["host"] else "discovered-2"
        if not state.get(key):
            self._wait(
                "the resource provider of %s" % host,
                lambda: any(
                    rp["name"] == host for rp in rest.resource_providers(token)
                ),
                state,
                watch,
            )
            self._manage("nova-manage", "cell_v2", "discover_hosts")
            state[key] = True
            self._save_state(state)
        self._wait(
            "nova-compute on %s to report" % host, reported, state, watch
        )
        self._say(
            "nova-compute on %s is up (%s, %s)"
            % (host, state["mode"], state["virt_type"])
        )

    # -- the second compute host (see hosts.py) --------------------------

    def _compute_path(self):
        # Nova runs `ssh` and `scp` by name: the wrappers come first.
        return "%s:%s:%s" % (
            hosts.bin_dir(self.layout),
            self.layout.venv / "bin",
            os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        )

    def _host2_argv(self, state, name):
        layout = self.layout
        testenv = self._testenv()
        if name == "sshd-1":
            return hosts.sshd_argv(layout, 1), {}
        if name == "sshd-2":
            return hosts.in_host2(
                layout, testenv, sys.executable, hosts.sshd_argv(layout, 2)
            ), {}
        if name == "libvirtd-2":
            return hosts.libvirtd_argv(
                layout, testenv, state, sys.executable
            ), {}
        return hosts.in_host2(
            layout,
            testenv,
            sys.executable,
            [
                layout.bin("nova-compute"),
                "--config-file",
                hosts.nova_conf_path(layout),
            ],
        ), {"PATH": self._compute_path()}

    def _libvirt2_answers(self):
        return (
            subprocess.run(
                ["virsh", "-c", hosts.libvirt_uri(self.layout), "version"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=30,
            ).returncode
            == 0
        )

    def _ensure_host2(self, state, env, debug):
        """Start what host 2 needs and is not running; returns when its
        nova-compute reports. Host 1's nova-compute restarts once, the
        first time, to take its migration settings."""
        layout = self.layout
        self._say("host 2: %s" % hosts.host2_name())
        hosts.ssh_files(layout)
        hosts.link_sockets(layout, env["libvirt"]["uri"])
        confs = (
            layout.conf("nova", "nova.conf"),
            hosts.nova_conf_path(layout),
        )
        before = [p.read_text() if p.exists() else None for p in confs]
        state["hosts"] = 2
        self._render_nova(env, state, debug)
        self._save_state(state)
        changed = [
            p.read_text() != old for p, old in zip(confs, before, strict=True)
        ]
        for name in ("sshd-1", "sshd-2"):
            if not self._alive(state["processes"].get(name)):
                self._spawn(state, name)
        if not self._alive(state["processes"].get("libvirtd-2")):
            # Its compute holds a connection to the daemon that is gone.
            self._stop(state, ["nova-compute-2"])
            self._spawn(state, "libvirtd-2")
            self._wait(
                "libvirtd of host 2",
                self._libvirt2_answers,
                state,
                ["libvirtd-2"],
            )
        self._check_alive(state, ["sshd-1", "sshd-2"])
        if state["mode"] == "rbd":
            self._define_ceph_secret(
                dict(env, libvirt={"uri": hosts.libvirt_uri(layout)}), state
            )
        token = self._admin_token()
        if changed[0] and self._alive(state["processes"].get("nova-compute")):
            self._say("restarting nova-compute of host 1: new configuration")
            self._stop(state, ["nova-compute"])
            started = time.time()
            self._spawn(state, "nova-compute")
            self._wait_compute(state, started, token)
        if changed[1]:
            self._stop(state, ["nova-compute-2"])
        if not self._alive(state["processes"].get("nova-compute-2")):
            started = time.time()
            self._spawn(state, "nova-compute-2")
            self._wait_compute(state, started, token, hosts.host2_name())
        self._ensure_move_flavors(token)

    def _ensure_move_flavors(self, token):
        """The shared flavor keeps off host 2; the two-host tests' own."""
        base = config.url("nova-api", "/v2.1/flavors")
        existing = {
            f["name"]: f["id"]
            for f in rest.request("GET", base, None, token)[2]["flavors"]
        }
        wanted = {
            config.FLAVOR_NAME: (
                None,
                {"trait:%s" % hosts.HOST2_TRAIT: "forbidden"},
            ),
            **hosts.MOVE_FLAVORS,
        }
        for name, (spec, extra) in wanted.items():
            flavor_id = existing.get(name)
            if flavor_id is None:
                body = {"flavor": dict(spec, name=name)}
                flavor_id = rest.request("POST", base, body, token)[2][
                    "flavor"
                ]["id"]
            if extra:
                rest.request(
                    "POST",
                    "%s/%s/os-extra_specs" % (base, flavor_id),
                    {"extra_specs": extra},
                    token,
                )

    def _remove_host2(self, state):
        """Back to one host: host 2's services stop (its guests with its
        libvirtd: move them first)."""
        self._say("stopping host 2")
        self._stop(state, list(reversed(hosts.SERVICES)))
        state["hosts"] = 1
        self._save_state(state)

    def _purge_host2_guests(self):
        state = self._load_state()
        env = state.get("foundation", {})
        if not self._alive(state.get("processes", {}).get("libvirtd-2")):
            return
        try:
            self._remove_guests(
                state,
                dict(env, libvirt={"uri": hosts.libvirt_uri(self.layout)}),
            )
        except MiniCloudError as exc:
            self._say("could not remove host 2's guests: %s" % exc)

    def _hosts_info(self, state, env):
        """What tests need to know of each compute host."""
        layout = self.layout
        info = [
            {
                "name": state["host"],
                "address": hosts.ADDRESSES[1],
                "libvirt_uri": env["libvirt"]["uri"],
                "instances_path": str(layout.instances_path),
                "instances_dir": str(layout.instances_path),
                "nova_conf": str(layout.conf("nova", "nova.conf")),
                "nova_compute": "nova-compute",
                # How one host's processes reach another's (scp, rsync).
                "ssh_config": str(hosts.ssh_dir(layout) / "ssh_config"),
            }
        ]
        if state.get("hosts", 1) > 1:
            info.append(
                {
                    "name": hosts.host2_name(),
                    "address": hosts.ADDRESSES[2],
                    "libvirt_uri": hosts.libvirt_uri(layout),
                    # Nova's path, as host 2's processes see it...
                    "instances_path": str(layout.instances_path),
                    # ...and where those files are on this machine.
                    "instances_dir": str(hosts.instances_dir(layout)),
                    "nova_conf": str(hosts.nova_conf_path(layout)),
                    "nova_compute": "nova-compute-2",
                    "ssh_config": str(hosts.ssh_dir(layout) / "ssh_config"),
                }
            )
        return info

    # -- the public operations -----------------------------------------

    def up(self, rbd=False, kvm=False, env=None, debug=False, hosts=None):
        """Bring the cloud up (or switch its disk mode); returns its info.

        Idempotent: services that already run in the wanted mode are left
        alone; a cloud running in the other disk mode only restarts
        nova-compute. `hosts` (1 or 2) sets the number of compute hosts;
        None keeps what runs (one host on a new cloud), so that callers
        that know nothing of a second host leave it alone.
        """
        state, env = self._up(rbd, kvm, env, debug)
        wanted = hosts or state.get("hosts", 1)
        if wanted not in (1, 2):
            raise MiniCloudError("--hosts must be 1 or 2, not %r" % hosts)
        if wanted == 2:
            self._ensure_host2(state, env, debug)
        elif state.get("hosts", 1) > 1:
            self._remove_host2(state)
        return self._write_info(state, env)

    def _up(self, rbd, kvm, env, debug):
        self._t0 = time.monotonic()
        self.install()
        env = self.foundation(rbd, env)
        state = self._load_state()
        state.setdefault("processes", {})
        mode = "rbd" if rbd else "file"
        virt_type = "qemu"
        if kvm:
            if os.access("/dev/kvm", os.R_OK | os.W_OK):
                virt_type = "kvm"
            else:
                self._say("KVM asked for but /dev/kvm is not usable: TCG")
        # The entries name the servers' PIDs: a component the test
        # environment restarted (new data, lost libvirt secret) means
        # starting our services again.
        fingerprint = {
            "mariadb": env["mariadb"],
            "rabbitmq": env["rabbitmq"],
            "libvirt": env["libvirt"],
            "debug": debug,
        }
        # Remembered for `down --purge`, which must find Nova's leftovers
        # without starting anything.
        state.setdefault("foundation", {}).update(env)
        running = self._running(state)
        same_base = state.get("fingerprint") == fingerprint
        if set(CORE_SERVICES) <= running and same_base:
            same_mode = (state["mode"], state["virt_type"]) == (
                mode,
                virt_type,
            )
            if same_mode and (
                mode == "file" or state.get("ceph") == env["ceph"]
            ):
                if mode == "rbd":
                    self._ensure_ceph_mgr(state, env)
                self._say("already up")
                return state, env
            self._switch_compute(state, env, mode, virt_type, debug)
            return state, env
        if running:
            self._say("restarting: %s" % ", ".join(sorted(running)))
            # Host 2's compute talks to the services restarted here; its
            # libvirtd and guests stay.
            self._stop(state, ["nova-compute-2", *reversed(SERVICES)])

        state.update(
            fingerprint=fingerprint,
            mode=mode,
            virt_type=virt_type,
            host=socket.gethostname(),
        )
        state.setdefault("secret_uuid", str(uuid.uuid4()))
        self._check_ports(CORE_SERVICES)
        provision = not (
            state.get("provisioned") == env["mariadb"]["url"]
            and self._databases(env["mariadb"]["url"], "exists")
        )
        if provision:
            self._say("provisioning databases and keys")
            self._remove_guests(state, env)
            self._purge_host2_guests()
            self._wipe_data()
            for key in (
                "provisioned",
                "discovered",
                "discovered-2",
                "projects",
            ):
                state.pop(key, None)
        self._render(env, state, debug)
        for sub in (
            "glance/images",
            "glance/staging",
            "glance/tasks",
            "nova/instances",
        ):
            (self.layout.data / sub).mkdir(parents=True, exist_ok=True)
        if provision:
            self._databases(env["mariadb"]["url"], "create")
        self._save_state(state)
        try:
            self._start_all(state, env, provision)
        except BaseException:
            self._say("failed: stopping what started")
            self._stop(state, list(reversed(SERVICES)))
            raise
        return state, env

    def _start_all(self, state, env, provision):
        self._spawn(state, "network")
        image = self._make_image()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            chains = [
                pool.submit(chain, state, provision)
                for chain in (
                    self._keystone_chain,
                    self._placement_chain,
                    self._glance_chain,
                    self._nova_chain,
                )
            ]
            for chain in chains:
                chain.result()
        self._check_alive(state, ["network"])
        if provision:
            state["provisioned"] = env["mariadb"]["url"]
            self._save_state(state)
        token = self._admin_token()

        def conductor_up():
            binaries = {
                s["binary"]
                for s in rest.compute_services(token)
                if s["state"] == "up"
            }
            return {"nova-conductor", "nova-scheduler"} <= binaries

        # nova-compute asks the conductor first thing and waits long
        # between tries: start it once the conductor listens.
        self._wait(
            "nova-conductor and nova-scheduler",
            conductor_up,
            state,
            ["nova-conductor", "nova-scheduler"],
        )
        started = self._start_compute(state, env)
        state["image_id"] = rest.ensure_image(token, image)
        state["flavor_id"] = rest.ensure_flavor(token)
        self._save_state(state)
        self._wait_compute(state, started, token)

    def _switch_compute(self, state, env, mode, virt_type, debug):
        self._say(
            "restarting nova-compute: %s/%s to %s/%s"
            % (state["mode"], state["virt_type"], mode, virt_type)
        )
        self._stop(state, ["nova-compute", "nova-compute-2"])
        state.update(mode=mode, virt_type=virt_type)
        self._render_nova(env, state, debug)
        self._save_state(state)
        try:
            started = self._start_compute(state, env)
            self._wait_compute(state, started, self._admin_token())
        except BaseException:
            self._stop(state, ["nova-compute"])
            raise
        # Host 2, if any, follows: _ensure_host2 starts its compute.

    def _wipe_data(self):
        for path in (
            self.layout.data,
            self.layout.etc / "keystone" / "fernet-keys",
            self.layout.etc / "keystone" / "credential-keys",
        ):
            shutil.rmtree(path, ignore_errors=True)

    def _stop_services(self, names):
        """Stop `names` (in reverse order) and say which ran; the state."""
        self._t0 = time.monotonic()
        state = self._load_state()
        state.setdefault("processes", {})
        running = self._running(state)
        self._stop(state, list(reversed(names)))
        stopped = running & set(names)
        self._say("stopped %s" % (", ".join(sorted(stopped)) or "nothing"))
        return state

    def stop(self, names):
        """Stop some services only: the tests take a host down this way
        (`up` starts them again)."""
        self._stop_services(list(names))

    def down(self, purge=False):
        """Stop what `up` started; with `purge`, remove everything."""
        if purge:
            self._purge_host2_guests()
        state = self._stop_services(SERVICES + hosts.SERVICES)
        if not purge:
            return
        env = state.get("foundation", {})
        try:
            self._remove_guests(state, env)
            if env.get("mariadb"):
                self._databases(env["mariadb"]["url"], "drop")
        except MiniCloudError as exc:
            # The test environment may be down already: nothing of ours
            # is left running in it then.
            self._say("could not clean the test environment: %s" % exc)
        shutil.rmtree(self.layout.root, ignore_errors=True)
        self._say("removed %s" % self.layout.root)

    def _processes_status(self, state, names):
        """Whether each of `names` runs, its PID and its log."""
        processes = {}
        for name in names:
            record = state.get("processes", {}).get(name)
            processes[name] = {
                "running": self._alive(record),
                "pid": record["pid"] if record else None,
                "log": str(self.log_path(name)),
            }
        return processes

    def status(self):
        state = self._load_state()
        names = SERVICES
        if state.get("hosts", 1) > 1:
            names += hosts.SERVICES
        processes = self._processes_status(state, names)
        return {
            "dir": str(self.layout.root),
            "mode": state.get("mode"),
            "virt_type": state.get("virt_type"),
            "host": state.get("host"),
            "hosts": state.get("hosts", 1),
            "processes": processes,
            "clouds_yaml": str(self.layout.clouds_yaml),
        }

    # -- what clients need -------------------------------------------------

    def _write_info(self, state, env):
        layout = self.layout
        self._write_clouds_yaml()
        info = {
            "dir": str(layout.root),
            "venv": str(layout.venv),
            "host": state["host"],
            "mode": state["mode"],
            "virt_type": state["virt_type"],
            "auth_url": config.AUTH_URL,
            "region": config.REGION,
            "password": config.PASSWORD,
            "projects": state["projects"],
            "clouds_yaml": str(layout.clouds_yaml),
            "openrc": {
                user: str(layout.root / ("openrc-%s" % user))
                for user in config.PEOPLE
            },
            "endpoints": {name: config.url(name) for name in config.PORTS},
            "libvirt_uri": env["libvirt"]["uri"],
            "instances_path": str(layout.instances_path),
            "ceph": dict(env["ceph"], secret_uuid=state["secret_uuid"])
            if state["mode"] == "rbd"
            else None,
            "transport_url": env["rabbitmq"]["transport_url"],
            "image_id": state["image_id"],
            "flavor_id": state["flavor_id"],
            "nova_conf": str(layout.conf("nova", "nova.conf")),
            "logs": {
                name: str(self.log_path(name))
                for name in SERVICES + hosts.SERVICES + ("setup",)
            },
            "hosts": self._hosts_info(state, env),
        }
        tmp = layout.info_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(info, indent=2, sort_keys=True))
        tmp.replace(layout.info_file)
        self._say(
            "up: %s, clouds.yaml at %s" % (state["mode"], layout.clouds_yaml)
        )
        return info

    def _write_clouds_yaml(self):
        # JSON is valid YAML: no YAML library needed to write it, and
        # openstacksdk reads it as clouds.yaml all the same.
        clouds = {}
        for user, person in config.PEOPLE.items():
            clouds[user] = {
                "auth": {
                    "auth_url": config.AUTH_URL,
                    "username": user,
                    "password": config.PASSWORD,
                    "project_name": person["project"],
                    "user_domain_name": "Default",
                    "project_domain_name": "Default",
                },
                "region_name": config.REGION,
                "identity_api_version": 3,
            }
        self.layout.clouds_yaml.write_text(
            json.dumps({"clouds": clouds}, indent=2) + "\n"
        )
        for user in config.PEOPLE:
            (self.layout.root / ("openrc-%s" % user)).write_text(
                "# Source me: `openstack` then acts as %s.\n"
                "export OS_CLIENT_CONFIG_FILE=%s\n"
                "export OS_CLOUD=%s\n" % (user, self.layout.clouds_yaml, user)
            )
