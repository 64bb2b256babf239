#!/usr/bin/env python3
"""Run the real components Snapmanager's tests need, privately.

The functional tests and the quickstart need a MariaDB, a RabbitMQ, a
libvirtd with QEMU and a single-node Ceph cluster. This tool runs private
copies of them under one directory, $SNAPMANAGER_TESTENV_DIR (default:
.testenv in the source tree), one subdirectory per component holding its
data, configuration, run files and logs. Everything listens on 127.0.0.1
only. What is up is described in <dir>/env.json.

    python3 tools/testenv/testenv.py up [--memstore] [COMPONENT ...]
    python3 tools/testenv/testenv.py down [--purge] [COMPONENT ...]
    python3 tools/testenv/testenv.py status

The pytest fixtures import this file and call ensure_up() and stop().

It uses the standard library only, because it runs before the project's
virtualenv exists.
"""

import argparse
import contextlib
import ctypes
import fcntl
import json
import os
import pathlib
import pwd
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.parse

COMPONENTS = ("mariadb", "rabbitmq", "libvirt", "ceph")
# Started only when asked for by name (the file-backend tests do), never
# by a bare `up`; a bare `down` and `status` include them.
EXTRA_COMPONENTS = ("libvirt-production",)
ALL_COMPONENTS = COMPONENTS + EXTRA_COMPONENTS

TOP = pathlib.Path(__file__).resolve().parents[2]
THIS_FILE = pathlib.Path(__file__).resolve()

LOG_TAIL_LINES = 40
DEFAULT_TIMEOUT = 120
STOP_TIMEOUT = 30
# Unix socket paths are limited to 108 bytes including the terminator.
MAX_SOCKET_PATH = 107

# Where the usual system services would be; used when they accept us.
SYSTEM_MYSQL_SOCKET = "/run/mysqld/mysqld.sock"
SYSTEM_RABBIT_PORT = 5672

LIBVIRTD = "/usr/sbin/libvirtd"
RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
RABBITMQCTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"


class TestEnvError(Exception):
    """The test environment cannot do what was asked."""


class ComponentFailed(TestEnvError):
    """A component did not come up; the message ends with its log tail."""

    def __init__(self, component, reason, log_tail):
        self.component = component
        self.reason = reason
        self.log_tail = log_tail
        super().__init__(
            "%s did not come up: %s\n%s" % (component, reason, log_tail)
        )


def env_dir():
    """The directory everything lives in."""
    explicit = os.environ.get("SNAPMANAGER_TESTENV_DIR")
    return pathlib.Path(explicit).resolve() if explicit else TOP / ".testenv"


# -- processes ----------------------------------------------------------

# Popen objects of the daemons this process started. Keeping them lets us
# reap a daemon as soon as it exits when the same process stops it (a
# pytest session does both); otherwise it lingers as a zombie.
_CHILDREN = {}


def _proc_stat(pid):
    """(state, start time) of `pid` from /proc, or None if there is none."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return None
    # The command name may contain spaces and parentheses: split after it.
    fields = stat.rsplit(")", 1)[1].split()
    return fields[0], int(fields[19])


def _reap(pid):
    popen = _CHILDREN.get(pid)
    if popen is not None and popen.poll() is not None:
        del _CHILDREN[pid]


def _alive(proc):
    """Whether the recorded process {"pid", "start"} still runs.

    The start time tells our process from an unrelated one that got the
    same PID later. A zombie counts as gone: PID 1 on these machines reaps
    orphans slowly, and waiting for it would cost seconds.
    """
    if not proc:
        return False
    _reap(proc["pid"])
    stat = _proc_stat(proc["pid"])
    return (
        stat is not None and stat[0] not in "ZX" and stat[1] == proc["start"]
    )


def _child_env(extra=None):
    """The environment for the daemons: ours, minus the caller's Python.

    The Ceph CLI is Debian's Python: the venv's paths must not reach it.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTHON", "VIRTUAL_ENV"))
    }
    env.update(extra or {})
    return env


def _spawn(argv, log_path, env=None, cwd=None):
    """Start a daemon in its own session, output appended to `log_path`."""
    with open(log_path, "ab") as log:
        # Marks where this start begins in a log that keeps earlier ones.
        log.write(
            b"--- %s testenv.py starts %s\n"
            % (time.strftime("%F %T").encode(), str(argv[0]).encode())
        )
        log.flush()
        popen = subprocess.Popen(
            [str(arg) for arg in argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_child_env(env),
            cwd=cwd,
            # A Ctrl-C meant for the caller must not reach the daemons.
            start_new_session=True,
        )
    _CHILDREN[popen.pid] = popen
    stat = _proc_stat(popen.pid)
    return {"pid": popen.pid, "start": stat[1] if stat else 0}


def _wait_gone(proc, timeout):
    deadline = time.monotonic() + timeout
    while _alive(proc):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _terminate(proc, timeout=STOP_TIMEOUT):
    """SIGTERM, wait up to `timeout`, then SIGKILL."""
    if not _alive(proc):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc["pid"], signal.SIGTERM)
    if _wait_gone(proc, timeout):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc["pid"], signal.SIGKILL)
    _wait_gone(proc, 10)


def _rss_kib(proc, field="VmRSS"):
    try:
        with open("/proc/%d/status" % proc["pid"]) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, TypeError, KeyError):
        pass
    return None


def _run(argv, timeout=60, check=True, **kwargs):
    """Run a set-up command; raise TestEnvError with its output on error."""
    argv = [str(arg) for arg in argv]
    try:
        result = subprocess.run(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            env=_child_env(kwargs.pop("env", None)),
            **kwargs,
        )
    except subprocess.TimeoutExpired as exc:
        raise TestEnvError(
            "%s timed out after %ss" % (" ".join(argv), timeout)
        ) from exc
    if check and result.returncode:
        raise TestEnvError(
            "%s failed (exit %d):\n%s"
            % (" ".join(argv), result.returncode, _tail(result.stdout))
        )
    return result


def _tail(text, lines=LOG_TAIL_LINES):
    return "\n".join(text.splitlines()[-lines:])


def log_tail(path, lines=LOG_TAIL_LINES):
    """The last `lines` lines of a log file, headed by its path."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode(errors="replace")
    except OSError:
        return "--- %s: (no log)" % path
    return "--- last lines of %s:\n%s" % (path, _tail(text, lines))


def _wait_for(what, check, deadline, watch=(), interval=0.05):
    """Poll `check()` until it is true; fail early if a watched daemon
    dies, so a broken start reports its log at once, not at the timeout."""
    while True:
        if check():
            return
        for name, proc in watch:
            if not _alive(proc):
                raise TestEnvError(
                    "%s exited while waiting for %s" % (name, what)
                )
        if time.monotonic() > deadline:
            raise TestEnvError("timed out waiting for %s" % what)
        time.sleep(interval)


# -- ports and files ----------------------------------------------------


def _port_free(port):
    with socket.socket() as sock:
        # Servers set SO_REUSEADDR: connections of an earlier run in
        # TIME_WAIT do not make the port busy for them, only a listener.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pick_port(preferred, avoid=()):
    """`preferred`, or the next free port after it."""
    for port in range(preferred, preferred + 100):
        if port not in avoid and _port_free(port):
            return port
    raise TestEnvError("no free port in %d-%d" % (preferred, preferred + 99))


def _tcp_open(host, port, timeout=1.0):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _unix_open(path, timeout=1.0):
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def _write(path, text, mode=0o644):
    """Write a file atomically (readers never see half of it)."""
    path = pathlib.Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(
        os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w"
    ) as f:
        f.write(text)
    os.chmod(tmp, mode)
    tmp.replace(path)


def _check_socket_path(path):
    if len(str(path)) > MAX_SOCKET_PATH:
        raise TestEnvError(
            "socket path %s is longer than %d bytes: use a shorter "
            "SNAPMANAGER_TESTENV_DIR" % (path, MAX_SOCKET_PATH)
        )


def _require(*paths):
    for path in paths:
        if not os.path.exists(path):
            raise TestEnvError(
                "%s is missing: run tools/testenv/install-packages.sh" % path
            )


def _epmd_answers(port):
    """Whether an epmd answers a NAMES request on `port`."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(struct.pack(">HB", 1, ord("n")))
            return len(sock.recv(4)) == 4
    except OSError:
        return False


# -- AMQP ---------------------------------------------------------------


def _amqp_shortstr(value):
    return struct.pack("B", len(value)) + value


def _amqp_send(sock, class_id, method_id, args):
    payload = struct.pack(">HH", class_id, method_id) + args
    sock.sendall(struct.pack(">BHI", 1, 0, len(payload)) + payload + b"\xce")


def _amqp_recv(sock):
    """Read one frame; return (class, method, arguments) of a method."""

    def exactly(size):
        data = b""
        while len(data) < size:
            chunk = sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("connection closed")
            data += chunk
        return data

    kind, _channel, size = struct.unpack(">BHI", exactly(7))
    payload = exactly(size + 1)[:-1]
    if kind != 1:
        return None, None, payload
    class_id, method_id = struct.unpack(">HH", payload[:4])
    return class_id, method_id, payload[4:]


def amqp_login(host, port, user, password, vhost, timeout=2.0):
    """Whether an AMQP 0-9-1 server accepts `user` on `vhost`.

    Just enough of the protocol (connection start, tune, open, close) to
    know the broker is up and the credentials work; the standard library
    has no AMQP client.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"AMQP\x00\x00\x09\x01")
            if _amqp_recv(sock)[:2] != (10, 10):  # connection.start
                return False
            response = b"\x00%s\x00%s" % (user.encode(), password.encode())
            _amqp_send(
                sock,
                10,
                11,  # connection.start-ok
                struct.pack(">I", 0)
                + _amqp_shortstr(b"PLAIN")
                + struct.pack(">I", len(response))
                + response
                + _amqp_shortstr(b"en_US"),
            )
            class_id, method_id, args = _amqp_recv(sock)
            if (class_id, method_id) != (10, 30):  # connection.tune
                return False
            channel_max, frame_max, _heartbeat = struct.unpack(
                ">HIH", args[:8]
            )
            # connection.tune-ok: the server's limits, no heartbeats.
            _amqp_send(
                sock, 10, 31, struct.pack(">HIH", channel_max, frame_max, 0)
            )
            _amqp_send(
                sock,
                10,
                40,  # connection.open
                _amqp_shortstr(vhost.encode()) + _amqp_shortstr(b"") + b"\0",
            )
            opened = _amqp_recv(sock)[:2] == (10, 41)
            if opened:
                _amqp_send(
                    sock,
                    10,
                    50,  # connection.close
                    struct.pack(">H", 200)
                    + _amqp_shortstr(b"bye")
                    + struct.pack(">HH", 0, 0),
                )
                with contextlib.suppress(OSError):
                    _amqp_recv(sock)
            return opened
    except (OSError, struct.error):
        return False


# -- components ---------------------------------------------------------


class Component:
    """One daemon (or a few) under <dir>/<name>.

    state.json in the component's directory records the processes it runs
    ({"pid", "start"}, stopped in the order of STOP_ORDER), the ports it
    picked and its generated secrets, so that any later process can find,
    describe and stop what an earlier one started.
    """

    name = None
    STOP_ORDER = ()
    timeout = DEFAULT_TIMEOUT

    def __init__(self, root):
        self.root = root
        self.dir = root / self.name
        self.state_file = self.dir / "state.json"
        self.log = self.dir / ("%s.log" % self.name)
        self.state = self._load_state()

    def _load_state(self):
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}

    def _save_state(self):
        _write(
            self.state_file,
            json.dumps(self.state, indent=2, sort_keys=True),
            0o600,
        )

    @property
    def processes(self):
        return self.state.setdefault("processes", {})

    def _secret(self, key):
        """A generated secret, kept with the data it protects."""
        if key not in self.state:
            self.state[key] = secrets.token_hex(12)
            self._save_state()
        return self.state[key]

    def _port(self, key, preferred, avoid=()):
        """A port for `key`: the one used before if it is still free."""
        ports = self.state.setdefault("ports", {})
        port = ports.get(key)
        if port is None or port in avoid or not _port_free(port):
            port = _pick_port(preferred, avoid)
            ports[key] = port
            self._save_state()
        return port

    # The public face.

    def external(self):
        """The env.json entry of a server we use but do not run, or None."""
        return None

    def _check_external(self, entry):
        """Raise TestEnvError if the external server does not answer."""

    def running(self):
        # Every process of a complete start, alive: a start that was cut
        # short (its caller killed) does not count, and is redone.
        return all(
            _alive(self.processes.get(name)) for name in self.STOP_ORDER
        )

    def up(self, timeout=None, **options):
        external = self.external()
        if external is not None:
            self._check_external(external)
            return external
        if self.running():
            self._check_options(**options)
            return self.info()
        # Whatever is left of a run that died half-way goes first.
        self._stop_processes()
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        deadline = time.monotonic() + (timeout or self.timeout)
        try:
            self._start(deadline, **options)
        except Exception as exc:
            # Whatever went wrong, what this start left running goes, and
            # the caller gets the logs.
            tails = "\n".join(log_tail(path) for path in self._failure_logs())
            self._stop_processes()
            raise ComponentFailed(self.name, str(exc), tails) from exc
        return self.info()

    def down(self, purge=False):
        # Only what we recorded starting: an external server is never ours.
        self._stop_processes()
        if purge and self.dir.exists():
            shutil.rmtree(self.dir)
            self.state = {}

    def describe(self):
        """Lines for `status`."""
        external = self.external()
        if external is not None:
            return ["external (%s)" % external.get("source", "")]
        if not self.running():
            return ["stopped"]
        lines = []
        for name in reversed(self.STOP_ORDER):
            proc = self.processes[name]
            rss = _rss_kib(proc)
            lines.append(
                "pid %d %s, RSS %s MiB"
                % (proc["pid"], name, "?" if rss is None else rss // 1024)
            )
        lines.append("log %s" % self.log)
        return lines

    # What the components implement.

    def info(self):
        raise NotImplementedError

    def _start(self, deadline, **options):
        raise NotImplementedError

    def _check_options(self, **options):
        """Complain if a running component cannot honour `options`."""

    def _failure_logs(self):
        return [self.log]

    def _stop_processes(self):
        for name in self.STOP_ORDER:
            proc = self.processes.get(name)
            if proc:
                _terminate(proc)
        if self.processes:
            self.state["processes"] = {}
            self._save_state()


class MariaDB(Component):
    """MariaDB 10.11 on 127.0.0.1:3307 (or the next free port).

    root@localhost (the private socket) and root@127.0.0.1 (TCP) both use
    a generated password, kept in state.json and in the [client] section
    of my.cnf (so `mariadb --defaults-file=<dir>/mariadb/my.cnf` works).
    """

    name = "mariadb"
    STOP_ORDER = ("mariadbd",)
    PORT = 3307

    @property
    def my_cnf(self):
        return self.dir / "my.cnf"

    @property
    def socket(self):
        return self.dir / "mariadbd.sock"

    def external(self):
        url = os.environ.get("SNAPMANAGER_TEST_MYSQL_URL")
        if url:
            return {
                "url": url,
                "external": True,
                "source": "SNAPMANAGER_TEST_MYSQL_URL",
            }
        if _detect_enabled() and _system_mysql_root_works():
            # Root authenticates by its Unix user over the socket, as
            # Debian sets it up; PyMySQL can do that too.
            return {
                "url": "mysql+pymysql://root@localhost/?unix_socket=%s"
                % SYSTEM_MYSQL_SOCKET,
                "external": True,
                "source": "system MariaDB at %s" % SYSTEM_MYSQL_SOCKET,
            }
        return None

    def _check_external(self, entry):
        _check_reachable(entry["url"], 3306, entry["source"])

    def info(self):
        return {
            "url": "mysql+pymysql://root:%s@127.0.0.1:%d/"
            % (self.state["password"], self.state["ports"]["mysql"]),
            "external": False,
            "pid": self.processes["mariadbd"]["pid"],
            "log": str(self.log),
            "socket": str(self.socket),
            "port": self.state["ports"]["mysql"],
            "my_cnf": str(self.my_cnf),
        }

    def _start(self, deadline, **options):
        _require("/usr/sbin/mariadbd", "/usr/bin/mariadb-install-db")
        _check_socket_path(self.socket)
        password = self._secret("password")
        port = self._port("mysql", self.PORT)
        datadir = self.dir / "data"
        user = pwd.getpwuid(os.getuid()).pw_name
        _write(
            self.my_cnf,
            MYSQL_CNF.format(
                user=user,
                datadir=datadir,
                socket=self.socket,
                pid_file=self.dir / "mariadbd.pid",
                port=port,
                log=self.log,
                password=password,
            ),
            0o600,
        )
        initialized = self.state.get("initialized")
        if not initialized:
            # A first start that failed half-way leaves nothing worth
            # keeping.
            shutil.rmtree(datadir, ignore_errors=True)
            _run(
                [
                    "mariadb-install-db",
                    "--defaults-file=%s" % self.my_cnf,
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                ],
                timeout=max(1, deadline - time.monotonic()),
            )
        proc = _spawn(
            ["/usr/sbin/mariadbd", "--defaults-file=%s" % self.my_cnf],
            self.log,
        )
        self.processes["mariadbd"] = proc
        self._save_state()
        # mariadb-admin ping succeeds once the server answers, even if it
        # refuses the login (before the first set-up, root has no password).
        _wait_for(
            "mariadb-admin ping",
            lambda: (
                self.socket.exists()
                and _run(
                    [
                        "mariadb-admin",
                        "--defaults-file=%s" % self.my_cnf,
                        "ping",
                    ],
                    check=False,
                ).returncode
                == 0
            ),
            deadline,
            [("mariadbd", proc)],
        )
        if not initialized:
            # mariadb-install-db leaves root@localhost without a password;
            # give it ours and add root@127.0.0.1 for TCP clients. The
            # other root accounts it makes are unusable here (names are not
            # resolved, only 127.0.0.1 is bound).
            useless = {"::1", socket.gethostname()} - {
                "localhost",
                "127.0.0.1",
            }
            sql = MYSQL_INIT_SQL.format(password=password) + "".join(
                "DROP USER IF EXISTS 'root'@'%s';\n" % host
                for host in sorted(useless)
            )
            _run(
                [
                    "mariadb",
                    "--no-defaults",
                    "--socket=%s" % self.socket,
                    "-uroot",
                ],
                input=sql + "FLUSH PRIVILEGES;\n",
            )
            self.state["initialized"] = True
            self._save_state()
        # What clients use: TCP, with the password.
        _run(
            [
                "mariadb",
                "--no-defaults",
                "--protocol=tcp",
                "-h127.0.0.1",
                "-P%d" % port,
                "-uroot",
                "-e",
                "SELECT 1",
            ],
            env={"MYSQL_PWD": password},
        )


MYSQL_CNF = """\
# Written by tools/testenv/testenv.py at every start: edits are lost.
[mysqld]
user = {user}
datadir = {datadir}
socket = {socket}
pid-file = {pid_file}
port = {port}
bind-address = 127.0.0.1
skip-name-resolve
log-error = {log}
character-set-server = utf8mb4
collation-server = utf8mb4_general_ci
# A test server: small, and fast rather than crash-safe.
innodb_buffer_pool_size = 64M
innodb_log_file_size = 32M
innodb_flush_log_at_trx_commit = 2
innodb_doublewrite = 0
max_connections = 500

[client]
socket = {socket}
user = root
password = {password}
"""

MYSQL_INIT_SQL = """\
ALTER USER 'root'@'localhost' IDENTIFIED BY '{password}';
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';
ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY '{password}';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
"""


def _detect_enabled():
    return os.environ.get("SNAPMANAGER_TESTENV_DETECT", "1") != "0"


def _system_mysql_root_works():
    if not os.path.exists(SYSTEM_MYSQL_SOCKET) or not shutil.which("mariadb"):
        return False
    try:
        result = _run(
            [
                "mariadb",
                "--no-defaults",
                "--socket=" + SYSTEM_MYSQL_SOCKET,
                "-uroot",
                "-e",
                "SELECT 1",
            ],
            timeout=10,
            check=False,
        )
    except TestEnvError:
        return False
    return result.returncode == 0


def _check_reachable(url, default_port, source):
    """Fail clearly if the external server at `url` does not answer."""
    parsed = urllib.parse.urlsplit(url)
    unix_socket = urllib.parse.parse_qs(parsed.query).get("unix_socket")
    if unix_socket:
        ok = _unix_open(unix_socket[0])
        where = unix_socket[0]
    else:
        # Several brokers may be listed: the first one has to answer.
        netloc = parsed.netloc.split(",")[0].rsplit("@", 1)[-1]
        host, _, port = (
            netloc.rpartition(":") if ":" in netloc else (netloc, "", "")
        )
        host = host.strip("[]") or "127.0.0.1"
        where = "%s:%s" % (host, port or default_port)
        ok = _tcp_open(host, int(port or default_port), timeout=5)
    if not ok:
        raise TestEnvError(
            "the server from %s, %s, does not answer" % (source, where)
        )


class RabbitMQ(Component):
    """RabbitMQ 3.10 on 127.0.0.1:5673, with its own epmd.

    A private epmd on its own port means our node name cannot clash with
    any other Erlang node on the machine, and we know the PID to stop.
    The user and vhost come from default_user/default_vhost on the first
    boot (a rabbitmqctl call costs about a second).
    """

    name = "rabbitmq"
    STOP_ORDER = ("rabbitmq-server", "beam.smp", "epmd")
    PORT = 5673
    DIST_PORT = 25673
    EPMD_PORT = 4371
    USER = "snapmanager"
    VHOST = "snapmanager"

    def external(self):
        url = os.environ.get("SNAPMANAGER_TEST_TRANSPORT_URL")
        if url:
            return {
                "transport_url": url,
                "external": True,
                "source": "SNAPMANAGER_TEST_TRANSPORT_URL",
            }
        if _detect_enabled() and amqp_login(
            "127.0.0.1", SYSTEM_RABBIT_PORT, "guest", "guest", "/"
        ):
            return {
                "transport_url": "rabbit://guest:guest@127.0.0.1:%d/"
                % SYSTEM_RABBIT_PORT,
                "external": True,
                "source": "system RabbitMQ on port %d" % SYSTEM_RABBIT_PORT,
            }
        return None

    def _check_external(self, entry):
        _check_reachable(entry["transport_url"], 5672, entry["source"])

    def _url(self, vhost):
        return "rabbit://%s:%s@127.0.0.1:%d/%s" % (
            self.USER,
            self.state["password"],
            self.state["ports"]["amqp"],
            vhost,
        )

    def ctl(self, *args):
        """Run rabbitmqctl against this node; return its output."""
        done = subprocess.run(
            [RABBITMQCTL, "-q", *args],
            env={
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                # Where the node's Erlang cookie is, and how to find it.
                "HOME": str(self.dir),
                "RABBITMQ_NODENAME": "rabbit@localhost",
                "ERL_EPMD_PORT": str(self.state["ports"]["epmd"]),
                "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise TestEnvError(
                "rabbitmqctl %s failed: %s"
                % (" ".join(args), (done.stderr or done.stdout).strip())
            )
        return done.stdout

    def vhost_url(self, vhost):
        """The transport URL of ``vhost``, made first if it is missing.

        Snapmanager's conductors all consume from the queue named after
        their topic, and queues are per vhost: set-ups sharing one
        RabbitMQ (the quickstart's stack, benchmarks, a test module's
        services) each need a vhost of their own, as separate clouds
        would. A rabbitmqctl call costs about a second.
        """
        if vhost not in self.ctl("list_vhosts").split():
            self.ctl("add_vhost", vhost)
        self.ctl("set_permissions", "-p", vhost, self.USER, ".*", ".*", ".*")
        return self._url(vhost)

    def delete_vhost(self, vhost):
        """Remove ``vhost`` with its queues (a no-op if it is gone)."""
        if vhost in self.ctl("list_vhosts").split():
            self.ctl("delete_vhost", vhost)

    def info(self):
        return {
            "transport_url": self._url(self.VHOST),
            "external": False,
            "pid": self.processes["beam.smp"]["pid"],
            "epmd_pid": self.processes["epmd"]["pid"],
            "log": str(self.log),
            "port": self.state["ports"]["amqp"],
        }

    def _failure_logs(self):
        return [self.dir / "rabbitmq-server.log", self.log]

    def _start(self, deadline, **options):
        _require(RABBITMQ_SERVER, "/usr/bin/epmd")
        password = self._secret("password")
        amqp = self._port("amqp", self.PORT)
        dist = self._port("dist", self.DIST_PORT, avoid=[amqp])
        epmd = self._port("epmd", self.EPMD_PORT, avoid=[amqp, dist])
        _write(
            self.dir / "rabbitmq.conf",
            RABBITMQ_CONF.format(
                port=amqp, user=self.USER, password=password, vhost=self.VHOST
            ),
            0o600,
        )
        _write(self.dir / "enabled_plugins", "[].\n")
        # Debian's /etc/rabbitmq/rabbitmq-env.conf must not apply.
        _write(self.dir / "rabbitmq-env.conf", "")
        env = {
            # The Erlang cookie lives in $HOME.
            "HOME": str(self.dir),
            "RABBITMQ_NODENAME": "rabbit@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(amqp),
            "RABBITMQ_DIST_PORT": str(dist),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir),
            "RABBITMQ_LOGS": str(self.log),
            "RABBITMQ_PID_FILE": str(self.dir / "rabbitmq.pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.dir / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(epmd),
        }
        epmd_proc = _spawn(
            ["/usr/bin/epmd", "-port", epmd, "-address", "127.0.0.1"],
            self.dir / "epmd.log",
        )
        self.processes["epmd"] = epmd_proc
        self._save_state()
        # The node must find our epmd, or it starts one of its own that we
        # would not know about.
        _wait_for(
            "epmd",
            lambda: _epmd_answers(epmd),
            deadline,
            [("epmd", epmd_proc)],
        )
        # The script stays as the node's parent and turns SIGTERM into a
        # clean shutdown of the node (beam.smp, whose PID it writes).
        pid_file = self.dir / "rabbitmq.pid"
        with contextlib.suppress(FileNotFoundError):
            pid_file.unlink()
        server = _spawn(
            [RABBITMQ_SERVER], self.dir / "rabbitmq-server.log", env=env
        )
        self.processes["rabbitmq-server"] = server
        self._save_state()
        # A login to our vhost is what clients need, and is cheaper to
        # poll than `rabbitmqctl await_startup` (an Erlang VM per call).
        _wait_for(
            "an AMQP login on port %d" % amqp,
            lambda: amqp_login(
                "127.0.0.1", amqp, self.USER, password, self.VHOST
            ),
            deadline,
            [("rabbitmq-server", server), ("epmd", epmd_proc)],
            interval=0.2,
        )
        pid = int(pid_file.read_text().split()[0])
        self.processes["beam.smp"] = {"pid": pid, "start": _proc_stat(pid)[1]}
        self._save_state()


RABBITMQ_CONF = """\
# Written by tools/testenv/testenv.py at every start: edits are lost.
listeners.tcp.1 = 127.0.0.1:{port}
# Created on the first boot only.
default_user = {user}
default_pass = {password}
default_vhost = {vhost}
default_user_tags.administrator = true
default_permissions.configure = .*
default_permissions.read = .*
default_permissions.write = .*
# Test machines may have little free disk; a blocked publisher would
# look like a hung test.
disk_free_limit.absolute = 50MB
log.console = false
log.file.level = info
"""


class Libvirt(Component):
    """libvirtd 9.0 with QEMU 7.2 (TCG), privileged, made private.

    libvirtd running as root has its directories compiled in (/etc/libvirt,
    /var/lib/libvirt, /var/cache/libvirt, /var/log/libvirt, /run/libvirt).
    It runs in its own mount namespace where those are bind mounts of
    directories under <dir>/libvirt, so its configuration (qemu.conf
    included), domain definitions and state, capability cache and QEMU
    logs are all ours, and a second test environment on the machine cannot
    see them. Still shared with the host: the cgroup tree (libvirt creates
    /sys/fs/cgroup/<controller>/machine and one group per running domain,
    hence the unique domain names) and the empty mount points above.

    It runs under a small subreaper (see _reaper below) so that QEMU
    processes are reaped at once when a domain is destroyed.
    """

    name = "libvirt"
    # The subreaper stops libvirtd, then the QEMU processes left; libvirtd
    # is stopped directly only if the subreaper is gone.
    STOP_ORDER = ("reaper", "libvirtd")
    # host directory (under <dir>/libvirt) -> where libvirtd looks for it
    MOUNTS = (
        ("etc", "/etc/libvirt"),
        ("lib", "/var/lib/libvirt"),
        ("cache", "/var/cache/libvirt"),
        ("log", "/var/log/libvirt"),
        ("run", "/run/libvirt"),
    )
    DOMAIN_PREFIX = "snapmanager-test-"

    def _qemu_conf(self):
        return QEMU_CONF

    def _extra_binds(self):
        """(source, target) files mounted in the daemon's namespace."""
        return []

    @property
    def socket(self):
        return self.dir / "run" / "libvirt-sock"

    @property
    def uri(self):
        return "qemu+unix:///system?socket=%s" % self.socket

    def info(self):
        return {
            "uri": self.uri,
            "external": False,
            "pid": self.processes["reaper"]["pid"],
            "libvirtd_pid": self.processes["libvirtd"]["pid"],
            "log": str(self.log),
            "qemu_log_dir": str(self.dir / "log" / "qemu"),
            "domain_prefix": self.DOMAIN_PREFIX,
        }

    def _start(self, deadline, **options):
        _require(LIBVIRTD, "/usr/bin/qemu-system-x86_64", "/usr/bin/virsh")
        if os.getuid() != 0:
            raise TestEnvError("libvirtd must run as root (qemu:///system)")
        try:
            # libvirtd looks the user up even when qemu.conf says root.
            pwd.getpwnam("libvirt-qemu")
        except KeyError:
            raise TestEnvError(
                "user libvirt-qemu is missing: run "
                "tools/testenv/install-packages.sh"
            ) from None
        _check_socket_path(self.socket)
        for sub, _target in self.MOUNTS:
            (self.dir / sub).mkdir(exist_ok=True)
        _write(
            self.dir / "etc" / "libvirtd.conf",
            LIBVIRTD_CONF.format(sock_dir=self.socket.parent),
        )
        _write(self.dir / "etc" / "qemu.conf", self._qemu_conf())
        pid_file = self.dir / "run" / "libvirtd.pid"
        with contextlib.suppress(FileNotFoundError):
            pid_file.unlink()
        binds = []
        for sub, target in self.MOUNTS:
            binds += ["--bind", "%s:%s" % (self.dir / sub, target)]
        for source, target in self._extra_binds():
            binds += ["--bind", "%s:%s" % (source, target)]
        # -I -S: the standard library is all it needs; the caller's venv
        # and its .pth files would only cost memory and start-up time.
        reaper = _spawn(
            [
                sys.executable,
                "-I",
                "-S",
                THIS_FILE,
                "_reaper",
                *binds,
                "--",
                LIBVIRTD,
                "--pid-file",
                pid_file,
            ],
            self.log,
        )
        self.processes["reaper"] = reaper
        self._save_state()
        watch = [("the libvirtd subreaper", reaper)]
        _wait_for("libvirtd's pid file", pid_file.exists, deadline, watch)
        # Readiness: the QEMU driver answers (on the first start it probes
        # QEMU's capabilities first, about 8 s; they are cached after).
        _wait_for(
            "the QEMU driver",
            lambda: (
                _run(
                    ["virsh", "-c", self.uri, "version"],
                    check=False,
                    timeout=max(1, deadline - time.monotonic()),
                ).returncode
                == 0
            ),
            deadline,
            watch,
            interval=0.1,
        )
        pid = int(pid_file.read_text().split()[0])
        stat = _proc_stat(pid)
        self.processes["libvirtd"] = {"pid": pid, "start": stat[1]}
        self._save_state()


LIBVIRTD_CONF = """\
# Written by tools/testenv/testenv.py at every start: edits are lost.
# Only root reaches this directory; no polkit on test machines.
unix_sock_dir = "{sock_dir}"
unix_sock_ro_perms = "0700"
unix_sock_rw_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
"""

QEMU_CONF = """\
# Written by tools/testenv/testenv.py at every start: edits are lost.
# QEMU writes its log itself: no virtlogd needed.
stdio_handler = "file"
# Test disks are files the tests create as root; nothing to relabel or
# chown, and no xattrs left on them.
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
# No per-domain /dev namespace: one thing less to set up per start.
namespaces = []
"""


class LibvirtProduction(Libvirt):
    """A second libvirtd that runs QEMU as a production host does.

    Separate from `libvirt` (its own directories under
    <dir>/libvirt-production, its own mount namespace and socket), so it
    can be started beside the running one without touching it. QEMU runs
    as libvirt-qemu:libvirt-qemu with libvirt's dynamic ownership (disk
    files chowned to QEMU's user while a domain uses them, the owner
    remembered in xattrs and given back), and libvirt picks the security
    driver as on a host (AppArmor where the kernel has it enabled). The
    files QEMU opens, and every directory above them, must be reachable
    by libvirt-qemu, as /var/lib/nova/instances is on a compute host.
    """

    name = "libvirt-production"

    def _qemu_conf(self):
        return QEMU_CONF_PRODUCTION

    def _extra_binds(self):
        # This machine's /dev/kvm is root:rdma 0660: QEMU as libvirt-qemu
        # cannot use it, while libvirt's capability probe finds KVM, and
        # libvirt then probes QEMU again (~13 s) at every domain define.
        # A regular, root-only file over it, in this daemon's namespace
        # only, makes both agree on TCG (the tests never need KVM).
        if not os.path.exists("/dev/kvm"):
            return []
        no_kvm = self.dir / "no-kvm"
        _write(no_kvm, "", 0o600)
        return [(no_kvm, "/dev/kvm")]

    def info(self):
        return dict(
            super().info(), qemu_user="libvirt-qemu", qemu_group="libvirt-qemu"
        )


QEMU_CONF_PRODUCTION = """\
# Written by tools/testenv/testenv.py at every start: edits are lost.
# QEMU as on a Debian compute host: its own user, dynamic ownership, the
# original owner remembered; no security_driver line, so libvirt uses
# AppArmor when the kernel has it enabled. QEMU writes its log itself.
stdio_handler = "file"
user = "libvirt-qemu"
group = "libvirt-qemu"
dynamic_ownership = 1
remember_owner = 1
# The one difference from a host: no per-domain /dev namespace, which
# cannot take the file this daemon's namespace mounts over /dev/kvm.
namespaces = []
"""


class Ceph(Component):
    """A single-node Ceph 16.2: one mon and one OSD, no mgr, cephx on.

    The OSD uses bluestore on a sparse file (survives kill -9) unless
    memstore is asked for: memstore is faster to start, but its space
    accounting has been seen to underflow after bursts of snapshot
    removals, reporting the OSD full and blocking every write.
    The pool `vms` exists with the rbd application enabled.
    """

    name = "ceph"
    STOP_ORDER = ("ceph-osd", "ceph-mon")
    MON_PORT = 3310  # msgr2
    MON_V1_PORT = 6790  # legacy, what Nova hands to QEMU
    POOL = "vms"
    OBJECTSTORES = ("memstore", "bluestore")

    @property
    def conf(self):
        return self.dir / "ceph.conf"

    @property
    def keyring(self):
        return self.dir / "ceph.client.admin.keyring"

    def _mon_host(self):
        ports = self.state["ports"]
        return "[v2:127.0.0.1:%d,v1:127.0.0.1:%d]" % (
            ports["mon"],
            ports["mon_v1"],
        )

    def info(self):
        return {
            "conf": str(self.conf),
            "keyring": str(self.keyring),
            "user": "admin",
            "pool": self.POOL,
            "external": False,
            "mon_host": self._mon_host(),
            "objectstore": self.state["objectstore"],
            "pids": {
                name: proc["pid"] for name, proc in self.processes.items()
            },
            "log": str(self.log),
            "log_dir": str(self.dir / "log"),
        }

    def _failure_logs(self):
        return [
            self.log,
            self.dir / "log" / "mon.a.log",
            self.dir / "log" / "osd.0.log",
        ]

    def _wanted_objectstore(self, objectstore):
        objectstore = (
            objectstore
            or os.environ.get("SNAPMANAGER_TESTENV_CEPH_STORE")
            or self.state.get("objectstore")
            or "bluestore"
        )
        if objectstore not in self.OBJECTSTORES:
            raise TestEnvError(
                "unknown Ceph objectstore %r (use one of %s)"
                % (objectstore, ", ".join(self.OBJECTSTORES))
            )
        return objectstore

    def _check_options(self, objectstore=None):
        wanted = self._wanted_objectstore(objectstore)
        if (
            self.state.get("initialized")
            and wanted != self.state["objectstore"]
        ):
            raise TestEnvError(
                "the Ceph OSD was created with %s, not %s: remove it first "
                "(testenv.py down --purge ceph)"
                % (self.state["objectstore"], wanted)
            )

    def _ceph(self, *args, timeout=30, **kwargs):
        return _run(
            ["ceph", "--conf", self.conf, "--connect-timeout", "10", *args],
            timeout=timeout,
            **kwargs,
        )

    def _rbd(self, *args, timeout=30, check=True):
        # Client timeouts: a daemon still starting means a retry, not a
        # client blocked for five minutes.
        return _run(
            [
                "rbd",
                "--conf",
                self.conf,
                "--client_mount_timeout=10",
                "--rados_mon_op_timeout=10",
                "--rados_osd_op_timeout=10",
                *args,
            ],
            timeout=timeout,
            check=check,
        )

    def _start(self, deadline, objectstore=None):
        _require("/usr/bin/ceph-mon", "/usr/bin/ceph-osd", "/usr/bin/rbd")
        self._check_options(objectstore)
        objectstore = self._wanted_objectstore(objectstore)
        for sub in ("log", "run"):
            (self.dir / sub).mkdir(exist_ok=True)
        _check_socket_path(self.dir / "run" / "client.admin.4194304.asok")
        initialized = self.state.get("initialized")
        if not initialized:
            self._wipe()
            self.state["objectstore"] = objectstore
            self.state["fsid"] = _uuid()
            mon = _pick_port(self.MON_PORT)
            self.state["ports"] = {
                "mon": mon,
                "mon_v1": _pick_port(self.MON_V1_PORT, avoid=[mon]),
            }
            self._save_state()
        else:
            # The mon's address is in its monmap: it cannot move.
            for key, port in self.state["ports"].items():
                if not _port_free(port):
                    raise TestEnvError(
                        "port %d (%s) is taken by another process; the "
                        "cluster cannot move (testenv.py down --purge ceph "
                        "makes a new one)" % (port, key)
                    )
        _write(self.conf, self._render_conf())
        if not initialized:
            self._create_mon()
        mon = _spawn(
            ["ceph-mon", "-f", "--conf", self.conf, "-i", "a"], self.log
        )
        self.processes["ceph-mon"] = mon
        self._save_state()
        # An OSD or client that reaches the mon before it leads (a
        # listening port is not enough) backs off for seconds.
        _wait_for(
            "the mon to lead",
            lambda: self._daemon_state("mon.a", "mon_status") == "leader",
            deadline,
            [("ceph-mon", mon)],
        )
        if not initialized:
            self._create_osd()
        osd = _spawn(
            ["ceph-osd", "-f", "--conf", self.conf, "-i", "0"], self.log
        )
        self.processes["ceph-osd"] = osd
        self._save_state()
        watch = [("ceph-mon", mon), ("ceph-osd", osd)]
        _wait_for(
            "the OSD to be active",
            lambda: self._daemon_state("osd.0", "status") == "active",
            deadline,
            watch,
        )
        if not initialized:
            self._ceph(
                "osd", "pool", "create", self.POOL, "8", "8", "replicated"
            )
            # Waits for the OSD: `rbd pool init` writes to the pool.
            _wait_for(
                "rbd pool init",
                lambda: (
                    self._rbd(
                        "pool", "init", self.POOL, check=False
                    ).returncode
                    == 0
                ),
                deadline,
                watch,
            )
            self.state["initialized"] = True
            self._save_state()
        probe = "%s/testenv-probe-%d" % (self.POOL, os.getpid())
        _wait_for(
            "an rbd image create in pool %s" % self.POOL,
            lambda: (
                self._rbd(
                    "create", "--size", "1M", probe, check=False
                ).returncode
                == 0
            ),
            deadline,
            watch,
            interval=0.2,
        )
        self._rbd("rm", "--no-progress", probe)

    def _daemon_state(self, daemon, prefix):
        """The "state" a daemon reports on its admin socket, or None."""
        reply = ceph_admin_socket(
            self.dir / "run" / (daemon + ".asok"), prefix
        )
        return reply.get("state") if reply else None

    def _wipe(self):
        for sub in ("mon", "osd"):
            shutil.rmtree(self.dir / sub, ignore_errors=True)
        for path in (
            self.keyring,
            self.dir / "mon.keyring",
            self.dir / "monmap",
        ):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _render_conf(self):
        store = (
            CEPH_MEMSTORE
            if self.state["objectstore"] == "memstore"
            else CEPH_BLUESTORE
        )
        return CEPH_CONF.format(
            fsid=self.state["fsid"],
            mon_host=self._mon_host(),
            dir=self.dir,
            keyring=self.keyring,
            objectstore=store,
            class_dir=_rados_class_dir(),
        )

    def _create_mon(self):
        mon_keyring = self.dir / "mon.keyring"
        _run(
            [
                "ceph-authtool",
                "--create-keyring",
                mon_keyring,
                "--gen-key",
                "-n",
                "mon.",
                "--cap",
                "mon",
                "allow *",
            ]
        )
        _run(
            [
                "ceph-authtool",
                "--create-keyring",
                self.keyring,
                "--gen-key",
                "-n",
                "client.admin",
                "--cap",
                "mon",
                "allow *",
                "--cap",
                "osd",
                "allow *",
                "--cap",
                "mgr",
                "allow *",
            ]
        )
        os.chmod(self.keyring, 0o600)
        _run(["ceph-authtool", mon_keyring, "--import-keyring", self.keyring])
        monmap = self.dir / "monmap"
        _run(
            [
                "monmaptool",
                "--create",
                "--fsid",
                self.state["fsid"],
                "--addv",
                "a",
                self._mon_host(),
                monmap,
            ]
        )
        (self.dir / "mon").mkdir()
        _run(
            [
                "ceph-mon",
                "--conf",
                self.conf,
                "--mkfs",
                "-i",
                "a",
                "--monmap",
                monmap,
                "--keyring",
                mon_keyring,
            ]
        )

    def _create_osd(self):
        osd_dir = self.dir / "osd"
        osd_dir.mkdir()
        key = _run(["ceph-authtool", "--gen-print-key"]).stdout.strip()
        _run(
            [
                "ceph-authtool",
                "--create-keyring",
                osd_dir / "keyring",
                "-n",
                "osd.0",
                "--add-key",
                key,
            ]
        )
        osd_uuid = _uuid()
        # Registers the OSD and its key in one mon command.
        osd_id = self._ceph(
            "osd",
            "new",
            osd_uuid,
            "-i",
            "-",
            input=json.dumps({"cephx_secret": key}),
        )
        if osd_id.stdout.strip() != "0":
            raise TestEnvError("expected OSD id 0, got %r" % osd_id.stdout)
        _run(
            [
                "ceph-osd",
                "--conf",
                self.conf,
                "-i",
                "0",
                "--mkfs",
                "--osd-uuid",
                osd_uuid,
            ],
            timeout=120,
        )


def ceph_admin_socket(path, prefix):
    """A command's JSON reply from a Ceph daemon's admin socket, or None.

    The protocol: the command as JSON and a NUL byte; the reply is a
    32-bit big-endian length and that many bytes. Far cheaper to poll than
    the `ceph` CLI, a Python program that takes about 0.3 s to start.
    """
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(2)
            sock.connect(str(path))
            sock.sendall(json.dumps({"prefix": prefix}).encode() + b"\0")
            header = sock.recv(4)
            if len(header) != 4:
                return None
            (size,) = struct.unpack(">I", header)
            data = b""
            while len(data) < size:
                chunk = sock.recv(size - len(data))
                if not chunk:
                    return None
                data += chunk
        return json.loads(data)
    except (OSError, ValueError):
        return None


def _rados_class_dir():
    """Where the OSD's object classes (librbd needs cls_rbd) are installed.

    Debian 12's Ceph 16 finds them by default; Debian 13's Ceph 18 looks in
    a relative `lib/<triplet>/rados-classes` and then fails every RBD call
    that needs cls_rbd, so name the directory the package installed.
    """
    found = sorted(pathlib.Path("/usr/lib").glob("*/rados-classes"))
    found.append(pathlib.Path("/usr/lib/rados-classes"))
    for path in found:
        if (path / "libcls_rbd.so").exists():
            return path
    raise TestEnvError(
        "no rados-classes directory with libcls_rbd.so under /usr/lib "
        "(is ceph-osd installed?)"
    )


def _uuid():
    with open("/proc/sys/kernel/random/uuid") as f:
        return f.read().strip()


CEPH_CONF = """\
# Written by tools/testenv/testenv.py at every start: edits are lost.
[global]
fsid = {fsid}
mon host = {mon_host}
public addr = 127.0.0.1
cluster addr = 127.0.0.1
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
run dir = {dir}/run
crash dir = {dir}/crash
# One OSD: one copy, placement by OSD rather than by host.
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
# Without these every snapshot create waits about a second for paxos.
paxos propose interval = 0.01
paxos min wait = 0.001

[mon]
mon data = {dir}/mon
mon cluster log file = {dir}/log/cluster.log
log file = {dir}/log/$name.log
admin socket = {dir}/run/$name.asok

[osd]
osd data = {dir}/osd
log file = {dir}/log/$name.log
admin socket = {dir}/run/$name.asok
osd class dir = {class_dir}
{objectstore}
[client]
keyring = {keyring}
# Per process: the Python bindings and the rbd CLI must not fight over one.
admin socket = {dir}/run/$name.$pid.asok
"""

CEPH_MEMSTORE = """\
osd objectstore = memstore
memstore device bytes = 1073741824
# A fast shutdown skips saving memstore's data: it would come back empty.
osd fast shutdown = false
"""

CEPH_BLUESTORE = """\
osd objectstore = bluestore
# A sparse file in the OSD directory, created by mkfs.
bluestore block create = true
bluestore block size = 10737418240
bluestore cache autotune = false
bluestore cache size = 134217728
"""


# -- the environment ----------------------------------------------------

CLASSES = {
    "mariadb": MariaDB,
    "rabbitmq": RabbitMQ,
    "libvirt": Libvirt,
    "ceph": Ceph,
    "libvirt-production": LibvirtProduction,
}


class Environment:
    """All components under one directory, with env.json kept current.

    Every public method takes an exclusive lock on <dir>/.lock, so that two
    processes (two pytest runs, or pytest and the CLI) never start the same
    component twice.
    """

    def __init__(self, root=None):
        self.root = pathlib.Path(root) if root else env_dir()

    def component(self, name):
        try:
            return CLASSES[name](self.root)
        except KeyError:
            raise TestEnvError(
                "unknown component %r (one of %s)"
                % (name, ", ".join(ALL_COMPONENTS))
            ) from None

    @contextlib.contextmanager
    def _locked(self):
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def ensure_up(self, name, timeout=None, **options):
        with self._locked():
            component = self.component(name)
            try:
                return component.up(timeout, **options)
            finally:
                self._write_env_json()

    def is_up(self, name):
        component = self.component(name)
        return component.external() is not None or component.running()

    def stop(self, name, purge=False):
        with self._locked():
            try:
                self.component(name).down(purge)
            finally:
                self._write_env_json()

    def status(self):
        """{component: env.json entry, or None when it is not up}."""
        with self._locked():
            return self._write_env_json()

    def _write_env_json(self):
        env = {}
        for name in ALL_COMPONENTS:
            component = self.component(name)
            entry = component.external()
            if entry is None and component.running():
                entry = component.info()
            env[name] = entry
        _write(
            self.root / "env.json",
            json.dumps(
                {k: v for k, v in env.items() if v}, indent=2, sort_keys=True
            )
            + "\n",
            0o600,
        )
        return env


def ensure_up(component, timeout=None, **options):
    """Start `component` unless it runs; return its env.json entry.

    Raises ComponentFailed (a TestEnvError) with the end of its log if it
    does not come up within `timeout` seconds. Ceph takes
    objectstore="memstore" or "bluestore".
    """
    return Environment().ensure_up(component, timeout, **options)


def is_up(component):
    """Whether `component` runs (or is an external server we use)."""
    return Environment().is_up(component)


def stop(component, purge=False):
    """Stop `component` if we run it; `purge` also removes its data."""
    Environment().stop(component, purge)


def status():
    """{component: env.json entry, or None when it is not up}."""
    return Environment().status()


# -- the subreaper around libvirtd -------------------------------------

PR_SET_CHILD_SUBREAPER = 36
CLONE_NEWNS = 0x00020000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000


def _libc_call(libc, function, *args):
    if getattr(libc, function)(*args) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, "%s: %s" % (function, os.strerror(errno)))


def _children_of(pid):
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            children.append(int(entry))
    return children


def _reap_all(deadline):
    """Reap children until none is left or `deadline` passes."""
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return True
        if pid == 0:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)


def reaper_main(binds, argv):
    """Run `argv` in a private mount namespace as a child subreaper.

    libvirt daemonizes QEMU (a double fork), so every QEMU is an orphan
    that PID 1 would reap; on these machines PID 1 takes about two
    seconds for it, and libvirt waits for that on every destroy. As a
    child subreaper we inherit the orphans and reap them at once.

    `binds` are (source, target) pairs mounted in the new namespace, so
    that the daemon's compiled-in directories are private to it.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_ulong,
        ctypes.c_void_p,
    ]
    if binds:
        _libc_call(libc, "unshare", CLONE_NEWNS)
        # Nothing mounted here may propagate back to the host.
        _libc_call(
            libc, "mount", b"none", b"/", None, MS_REC | MS_PRIVATE, None
        )
        for source, target in binds:
            if not os.path.exists(target):
                os.makedirs(target)
            _libc_call(
                libc,
                "mount",
                os.fsencode(source),
                os.fsencode(target),
                None,
                MS_BIND,
                None,
            )
    _libc_call(libc, "prctl", PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)

    # A signal that arrives before the child exists is passed on as soon
    # as it does.
    pending = []
    children = []

    def forward(signum, _frame):
        if not children:
            pending.append(signum)
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    # posix_spawn, not subprocess: our waitpid(-1) below would steal the
    # exit status from subprocess's own bookkeeping.
    child = os.posix_spawn(argv[0], argv, os.environ)
    children.append(child)
    for signum in pending:
        os.kill(child, signum)

    status = 0
    while True:
        try:
            pid, wait_status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        if pid == child:
            status = wait_status
            break
    # libvirtd leaves its domains running when it stops; without it they
    # are unmanaged QEMUs nobody would stop: stop them too.
    for pid in _children_of(os.getpid()):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    if not _reap_all(time.monotonic() + 10):
        for pid in _children_of(os.getpid()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _reap_all(time.monotonic() + 10)
    return os.waitstatus_to_exitcode(status) if status else 0


# -- command line -------------------------------------------------------


def _components(names, default=COMPONENTS):
    for name in names:
        if name not in ALL_COMPONENTS:
            raise SystemExit(
                "unknown component %r (one of %s)"
                % (name, ", ".join(ALL_COMPONENTS))
            )
    return names or list(default)


def _cmd_up(args):
    env = Environment()
    options = {"ceph": {"objectstore": "memstore"}} if args.memstore else {}
    for name in _components(args.components):
        was_up = env.is_up(name)
        started = time.monotonic()
        try:
            info = env.ensure_up(name, args.timeout, **options.get(name, {}))
        except TestEnvError as exc:
            print("%s: FAILED\n%s" % (name, exc), file=sys.stderr)
            return 1
        if info.get("external"):
            how = "external (%s)" % info.get("source")
        elif was_up:
            how = "already running"
        else:
            how = "started in %.1f s" % (time.monotonic() - started)
        print("%s: %s" % (name, how))
    print("env: %s" % (env.root / "env.json"))
    return 0


def _cmd_down(args):
    env = Environment()
    # Reverse order: nothing depends on Ceph, libvirt's guests may use it.
    for name in reversed(_components(args.components, ALL_COMPONENTS)):
        component = env.component(name)
        was_up = component.running()
        if component.external() is not None and not was_up:
            print("%s: external, left alone" % name)
            continue
        started = time.monotonic()
        env.stop(name, purge=args.purge)
        what = "not running"
        if was_up:
            what = "stopped in %.1f s" % (time.monotonic() - started)
        if args.purge:
            what += ", data removed"
        print("%s: %s" % (name, what))
    return 0


def _cmd_status(args):
    env = Environment()
    env.status()
    for name in ALL_COMPONENTS:
        lines = env.component(name).describe()
        print("%-9s %s" % (name, lines[0]))
        for line in lines[1:]:
            print("%-9s %s" % ("", line))
    print("env: %s" % (env.root / "env.json"))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Run Snapmanager's test components privately under "
        "$SNAPMANAGER_TESTENV_DIR (default: .testenv in the source tree)."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start components (default: all)")
    up.add_argument(
        "components",
        nargs="*",
        metavar="COMPONENT",
        help=" | ".join(ALL_COMPONENTS)
        + " (default: all but %s)" % ", ".join(EXTRA_COMPONENTS),
    )
    up.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds to wait for each component",
    )
    up.add_argument(
        "--memstore",
        action="store_true",
        help="a new Ceph OSD keeps its data in memory (memstore: starts "
        "faster, lost on kill -9) instead of bluestore on a sparse file",
    )
    up.set_defaults(func=_cmd_up)
    down = sub.add_parser("down", help="stop components (default: all)")
    down.add_argument("components", nargs="*", metavar="COMPONENT")
    down.add_argument(
        "--purge", action="store_true", help="also remove their data"
    )
    down.set_defaults(func=_cmd_down)
    status_parser = sub.add_parser("status", help="what runs, and where")
    status_parser.set_defaults(func=_cmd_status)
    args = parser.parse_args(argv)
    return args.func(args)


def _reaper_cli(argv):
    """`testenv.py _reaper [--bind SRC:DST ...] -- COMMAND ...` (internal)."""
    parser = argparse.ArgumentParser(prog="testenv.py _reaper")
    parser.add_argument("--bind", action="append", default=[])
    parser.add_argument("argv", nargs="+")
    args = parser.parse_args(argv)
    # Targets are fixed paths without colons; sources may have some.
    binds = [tuple(bind.rsplit(":", 1)) for bind in args.bind]
    return reaper_main(binds, args.argv)


if __name__ == "__main__":
    # `testenv.py status | head` should end quietly, as other tools do.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if sys.argv[1:2] == ["_reaper"]:
        sys.exit(_reaper_cli(sys.argv[2:]))
    sys.exit(main())
