"""libvirt's domain lifecycle events, as the agent uses them.

A QEMU that dies (killed, or crashed) leaves what it had open as it was:
for the ``incremental`` file mode, our dirty bitmaps marked in use in
Nova's qcow2, where they would make Nova's ``qemu-img resize`` fail
(compute/backends/checkpoints.py). libvirt tells its clients at once
(lifecycle event ``STOPPED``, detail ``FAILED`` or ``CRASHED``), so the
agent cleans up then rather than at its next start.

Only these two details: any other stop (Nova's own stop, destroy, a
migration) is Nova's doing, and Nova may touch the disk right after it
(a resize), when a ``qemu-img`` of ours holding the image's lock would
make Nova's fail. Events are a shortcut, not the guarantee: one missed
(the connection was down) is caught by the agent's recovery at start
and by the next snapshot of the instance.
"""

import threading

import libvirt
from oslo_log import log as logging

LOG = logging.getLogger(__name__)

_loop_lock = threading.Lock()
_loop_thread = None

_QEMU_DIED = (
    libvirt.VIR_DOMAIN_EVENT_STOPPED_FAILED,  # the emulator quit
    libvirt.VIR_DOMAIN_EVENT_STOPPED_CRASHED,  # the guest crashed
)


def start_loop():
    """Run libvirt's default event loop on a daemon thread; idempotent.

    libvirt delivers events only on connections opened after the loop's
    implementation is registered: call this before opening them.
    """
    global _loop_thread
    with _loop_lock:
        if _loop_thread is not None:
            return
        libvirt.virEventRegisterDefaultImpl()
        _loop_thread = threading.Thread(
            target=_run, name="libvirt-events", daemon=True
        )
        _loop_thread.start()


def _run():
    while True:
        try:
            libvirt.virEventRunDefaultImpl()
        except libvirt.libvirtError as exc:
            LOG.warning("libvirt event loop: %s", exc)


class CrashWatch:
    """Calls ``on_crash(instance_uuid)`` when a domain's QEMU died.

    The callback runs on libvirt's event thread: it must only hand the
    work over (the agent queues it on the instance's own queue).
    """

    def __init__(self, on_crash):
        self.on_crash = on_crash
        self._conn = None
        self._lock = threading.Lock()

    def ensure(self, conn):
        """Watch ``conn`` unless it is the one watched already (a
        reconnection gives a new connection, which needs registering
        again)."""
        with self._lock:
            if conn is self._conn:
                return
            try:
                conn.domainEventRegisterAny(
                    None,
                    libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                    self._lifecycle,
                    None,
                )
            except (libvirt.libvirtError, AttributeError) as exc:
                # No event loop registered before the connection opened,
                # or not a libvirt connection: recovery still covers it.
                LOG.warning("Not watching domain lifecycle events: %s", exc)
            self._conn = conn

    def _lifecycle(self, _conn, dom, event, detail, _opaque):
        if event != libvirt.VIR_DOMAIN_EVENT_STOPPED:
            return
        if detail not in _QEMU_DIED:
            return
        try:
            instance_uuid = dom.UUIDString()
        except libvirt.libvirtError:
            return
        LOG.info(
            "QEMU of %s stopped unexpectedly (detail %s)",
            instance_uuid,
            detail,
        )
        self.on_crash(instance_uuid)
