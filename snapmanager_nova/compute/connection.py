"""The agent's libvirt connection: opened once, reopened when it dies."""

import threading

import libvirt

from snapmanager_nova import conf as sm_conf
from snapmanager_nova.compute import calls

CONF = sm_conf.CONF


class LibvirtConnection:
    """One connection shared by the manager and the backends.

    ``opener`` returns a new connection (default: open ``[compute]
    libvirt_uri``). ``get`` hands out the open one, reopening it after
    libvirtd restarted; libvirt connections are safe to share between
    threads.
    """

    def __init__(self, opener=None):
        self._opener = opener or (
            lambda: libvirt.open(CONF.compute.libvirt_uri)
        )
        self._conn = None
        self._lock = threading.Lock()

    def get(self):
        with self._lock:
            if not self._alive():
                self._conn = calls.bounded(
                    "libvirt connect",
                    CONF.compute.call_timeout,
                    self._opener,
                    on_late=lambda conn: conn.close(),
                )
            return self._conn

    def _alive(self):
        if self._conn is None:
            return False
        try:
            return bool(self._conn.isAlive())
        except libvirt.libvirtError:
            # A connection closed under us answers with an error, not
            # False: it is just as dead.
            return False
