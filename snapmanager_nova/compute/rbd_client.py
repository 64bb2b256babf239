"""The agent's one connection to the Ceph cluster.

Connecting to a cluster costs a monitor session, authentication and the
OSD map (tens of milliseconds, and a mon round trip for every client), so
the agent connects once and shares the handle between its worker threads;
librados handles and I/O contexts are thread-safe. A connection that
librados reports as shut down or blocklisted is dropped and the next call
connects again.

Every call into librados and librbd goes through :meth:`RbdClient.call`,
which bounds it with ``[compute] call_timeout`` (or
:meth:`RbdClient.data_call`, ``copy_timeout``, for work that grows with
the data). That deadline frees the
instance's operation, but cannot stop the call; the librados timeouts set
here (``[rbd] rados_op_timeout``) make the abandoned call end inside
librados too, instead of holding a thread until the cluster answers.
"""

import contextlib
import errno
import threading

from oslo_log import log as logging

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import exception
from snapmanager_nova.compute import calls

CONF = sm_conf.CONF
LOG = logging.getLogger(__name__)

# librados answers these once the client is unusable: shut down, or
# blocklisted by the cluster (EBLOCKLISTED is ESHUTDOWN on Linux).
_DEAD_CONNECTION = (errno.ESHUTDOWN, errno.ECANCELED)


class RbdClient:
    """A lazily connected ``rados.Rados`` with per-pool I/O contexts."""

    def __init__(self, conf=CONF):
        self._conf = conf
        # Re-entrant: a call made while opening a pool may find the
        # connection dead and shut it down from the same thread.
        self._lock = threading.RLock()
        self._cluster = None
        self._ioctxs = {}

    # Calls

    def call(self, operation, func, *args, **kwargs):
        """Run one librados/librbd call (or a function making a few)
        with the agent's deadline; errors come out as BackendError."""
        return self._bounded(
            operation, self._conf.compute.call_timeout, func, args, kwargs
        )

    def data_call(self, operation, func, *args, **kwargs):
        """As :meth:`call`, for work that grows with the image's data
        (a rollback, a diff): bounded by ``[compute] copy_timeout``."""
        return self._bounded(
            operation, self._conf.compute.copy_timeout, func, args, kwargs
        )

    def close_later(self, image):
        """Close ``image`` on the storage threads, without waiting.

        Closing a handle that wrote releases the image's exclusive lock
        and its watch: a few OSD round trips that a snapshot already
        made need not wait for.
        """
        calls.in_background(
            f"close of image {image.get_name()}",
            image.close,
            call_pool=calls.STORAGE,
        )

    def _bounded(self, operation, timeout, func, args, kwargs):
        try:
            return calls.bounded(
                operation,
                timeout,
                func,
                *args,
                call_pool=calls.STORAGE,
                **kwargs,
            )
        except exception.BackendError as exc:
            if exc.kwargs.get("origin_code") in _DEAD_CONNECTION:
                LOG.warning(
                    "Ceph connection lost (%s); reconnecting on next use",
                    exc,
                )
                self.shutdown()
            raise

    def ioctx(self, pool):
        """The I/O context of ``pool``, opened once and reused."""
        with self._lock:
            ioctx = self._ioctxs.get(pool)
            if ioctx is None:
                cluster = self._connected()
                ioctx = self.call(
                    f"open pool {pool}",
                    cluster.open_ioctx,
                    pool,
                    on_late=_close,
                )
                self._ioctxs[pool] = ioctx
            return ioctx

    def instance_id(self):
        """This client's global id: how it shows in an image's watchers."""
        with self._lock:
            cluster = self._connected()
        return self.call("rados instance id", cluster.get_instance_id)

    @contextlib.contextmanager
    def image(self, pool, name, read_only=False):
        """An open ``rbd.Image``, closed on the way out.

        Opening an image for writing makes this client a watcher and, for
        maintenance operations, the exclusive-lock owner until close;
        keeping images open only around the calls that need them means a
        crash of the agent never leaves a lock behind that the next client
        must wait out.
        """
        import rbd

        ioctx = self.ioctx(pool)
        handle = self.call(
            f"open image {pool}/{name}",
            rbd.Image,
            ioctx,
            name,
            read_only=read_only,
            # Opened after its operation gave up: a handle left open would
            # keep a watch on the image (Nova's removal fails on it).
            on_late=_close,
        )
        try:
            yield handle
        finally:
            # Even when its operation timed out: an open handle keeps a
            # watch on the image.
            self.call(f"close image {pool}/{name}", handle.close, always=True)

    def shutdown(self):
        with self._lock:
            ioctxs, self._ioctxs = self._ioctxs, {}
            cluster, self._cluster = self._cluster, None
        for ioctx in ioctxs.values():
            try:
                ioctx.close()
            except Exception:
                LOG.debug("Closing an I/O context failed", exc_info=True)
        if cluster is not None:
            try:
                cluster.shutdown()
            except Exception:
                LOG.debug(
                    "Shutting the Ceph client down failed", exc_info=True
                )

    # Connection

    def _connected(self):
        # Called with self._lock held.
        if self._cluster is None:
            self._cluster = self._connect()
        return self._cluster

    def _connect(self):
        conf = self._conf.rbd
        cluster = calls.bounded(
            "connect to Ceph",
            # A margin over librados' own timeout, so that its error (with
            # its code) wins over ours when the cluster does not answer.
            conf.connect_timeout + 5,
            _connect,
            conf,
            on_late=lambda cluster: cluster.shutdown(),
        )
        LOG.info(
            "Connected to Ceph (%s) as %s",
            conf.ceph_conf,
            conf.rbd_user or "the configuration's default client",
        )
        return cluster


def _close(handle):
    handle.close()


def _connect(conf):
    # Imported here: Ceph's bindings come from the distribution's packages
    # and only hosts with RBD-backed instances need them.
    import rados

    cluster = rados.Rados(conffile=conf.ceph_conf, rados_id=conf.rbd_user)
    timeout = str(conf.rados_op_timeout)
    # Set before connecting: librados reads them when it starts.
    cluster.conf_set("rados_mon_op_timeout", timeout)
    cluster.conf_set("rados_osd_op_timeout", timeout)
    # Restores roll back in place and make no clones; should a clone ever
    # be made through this connection, format 2 keeps its parent snapshot
    # removable (librbd moves it to the trash until the last clone is
    # gone) with no protect/unprotect, so rotation is never blocked by it.
    cluster.conf_set("rbd_default_clone_format", "2")
    try:
        cluster.connect(timeout=conf.connect_timeout)
    except Exception:
        cluster.shutdown()
        raise
    return cluster


_CLIENT = None
_CLIENT_LOCK = threading.Lock()


def get_client():
    """The agent's shared client (one Ceph connection per process)."""
    global _CLIENT
    with _CLIENT_LOCK:
        if _CLIENT is None:
            _CLIENT = RbdClient()
        return _CLIENT
