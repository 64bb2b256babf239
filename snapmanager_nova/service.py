"""Process set-up shared by every snapmanager-* command."""

import signal
import sys
import threading

import oslo_messaging as messaging
from oslo_log import log as logging

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import context as sm_context
from snapmanager_nova import rpc
from snapmanager_nova.notifications import notifier

CONF = sm_conf.CONF
LOG = logging.getLogger(__name__)


def prepare(argv=None, default_config_files=None):
    """Parse the command line and config files and set up logging.

    ``--config-file`` and ``--config-dir`` come from oslo.config; without
    them /etc/snapmanager/snapmanager.conf is read when it exists.
    """
    logging.register_options(CONF)
    # alembic announces its plugins and context at INFO on every command;
    # that drowns the one line `snapmanager-manage db version` prints.
    logging.set_defaults(
        default_log_levels=logging.get_default_log_levels() + ["alembic=WARN"]
    )
    argv = sys.argv[1:] if argv is None else argv
    CONF(
        argv,
        project="snapmanager",
        default_config_files=default_config_files,
    )
    logging.setup(CONF, "snapmanager")


class RPCService:
    """An RPC server for one manager, with periodic tasks beside it.

    ``manager`` is the endpoint object; its optional ``init_host(context)``
    runs before the server starts (crash recovery must finish before new
    work arrives) and ``cleanup_host()`` after it stopped.
    ``periodic_tasks`` are ``(name, interval_seconds, func)``; each runs
    on a thread of its own as ``func(admin_context)``, first at start and
    then every interval. A heartbeat is one such task.
    """

    def __init__(self, binary, topic, manager, periodic_tasks=()):
        self.binary = binary
        self.topic = topic
        self.manager = manager
        self.periodic_tasks = list(periodic_tasks)
        self._server = None
        self._stopping = threading.Event()

    def start(self):
        context = sm_context.get_admin_context()
        init_host = getattr(self.manager, "init_host", None)
        if init_host is not None:
            init_host(context)
        target = messaging.Target(topic=self.topic, server=CONF.host)
        self._server = rpc.get_server(target, [self.manager])
        self._server.start()
        for name, interval, func in self.periodic_tasks:
            threading.Thread(
                target=self._repeat,
                args=(name, interval, func, context),
                name=name,
                daemon=True,
            ).start()
        LOG.info(
            "%s serving topic %s on %s", self.binary, self.topic, CONF.host
        )

    def _repeat(self, name, interval, func, context):
        while not self._stopping.is_set():
            try:
                func(context)
            except Exception:
                # One failed run (a DB or bus hiccup) must not end the
                # task: log it and try again at the next interval.
                LOG.exception("%s: periodic task %s failed", self.binary, name)
            self._stopping.wait(interval)

    def stop(self):
        self._stopping.set()
        if self._server is not None:
            self._server.stop()
            self._server.wait()
        cleanup_host = getattr(self.manager, "cleanup_host", None)
        if cleanup_host is not None:
            cleanup_host()
        LOG.info("%s stopped", self.binary)


def serve(service):
    """Run ``service`` until SIGTERM or SIGINT; return the exit status."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    service.start()
    stop.wait()
    service.stop()
    rpc.cleanup()
    notifier.cleanup()
    return 0
