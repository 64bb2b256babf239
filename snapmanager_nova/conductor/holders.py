"""Where a snapshot is stored, and bringing it to where its server is.

An RBD snapshot lives in the cluster: any host serving the ``rbd``
backend reaches it, and it follows its server anywhere. A file-backed
snapshot lives in the store of one compute host, its *holder*
(``snapshots.host``, reported by the agent that took it): deleting and
sizing it go to that host whatever host the server runs on now, and a
restore on another host first has it copied over (:class:`Transfer`),
unless ``[compute] snapshot_store_shared`` says every host sees the same
store. See doc/source/multihost.rst.
"""

import datetime

import oslo_messaging as messaging
from keystoneauth1 import exceptions as ks_exc
from openstack import exceptions as sdk_exc
from oslo_log import log as logging

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import exception
from snapmanager_nova.conductor import inventory
from snapmanager_nova.db import api as db_api
from snapmanager_nova.db import models

CONF = sm_conf.CONF
LOG = logging.getLogger(__name__)

# What the conductor waits beyond the agent's own copy deadline for a
# fetch's answer: the agent's kill and clean-up, and the bus.
ANSWER_MARGIN = 60


def needs_transfer(snapshot, instance, host):
    """Whether restoring ``snapshot`` on ``host`` needs it copied there
    first."""
    if CONF.compute.snapshot_store_shared:
        return False
    if (inventory.snapshot_backend(snapshot) or instance.backend) != "file":
        return False
    return inventory.snapshot_holder(snapshot, instance) != host


class TransferFailed(exception.SnapmanagerException):
    msg_fmt = "%(reason)s"


class Transfer:
    """Copy a file-backed snapshot to the store of the host its server
    now runs on, then record that host as its holder.

    The holder's agent lists what the snapshot needs, the receiving
    agent fetches it with Nova's own transport between compute hosts
    (:mod:`snapmanager_nova.compute.transfer`), the row is moved to the
    new holder (conditionally: of two conductors one moves it), and the
    old copy is dropped. Each step is safe to repeat: a fetch of a
    snapshot already there does nothing, and a row already moved is
    left alone. Every call has a deadline.
    """

    def __init__(self, compute_api):
        self.compute_api = compute_api

    def bring(self, context, snapshot, instance, host):
        """Make ``host`` hold ``snapshot``; returns the snapshot row as
        it is then. Raises TransferFailed saying why."""
        if not needs_transfer(snapshot, instance, host):
            return snapshot
        source = inventory.snapshot_holder(snapshot, instance)
        if source is None:
            raise TransferFailed(
                reason=f"no host is known to hold snapshot {snapshot.id}"
            )
        if db_api.snapshot_holders_gone(context, [source]):
            raise TransferFailed(
                reason=f"the host {source} holding snapshot {snapshot.id} "
                "is no longer in service"
            )
        timeout = CONF.compute.snapshot_transfer_timeout
        try:
            files = self.compute_api.describe_snapshot_files(
                context, source, instance.uuid, snapshot.snapshot_index
            )
            LOG.info(
                "Copying snapshot %s of %s from %s to %s",
                snapshot.id,
                instance.uuid,
                source,
                host,
            )
            self.compute_api.fetch_snapshot(
                context,
                host,
                instance.uuid,
                snapshot.snapshot_index,
                files,
                timeout + ANSWER_MARGIN,
            )
        except messaging.MessagingTimeout as exc:
            raise TransferFailed(
                reason=f"copying snapshot {snapshot.id} from {source} to "
                f"{host} did not finish in time: {exc}"
            ) from exc
        except messaging.RemoteError as exc:
            raise TransferFailed(
                reason=f"copying snapshot {snapshot.id} from {source} to "
                f"{host} failed: {exc.exc_type}: {exc.value}"
            ) from exc
        except messaging.MessagingException as exc:
            raise TransferFailed(
                reason=f"the agents on {source} and {host} could not be "
                f"asked to copy snapshot {snapshot.id}: {exc}"
            ) from exc
        if db_api.snapshot_move_holder(context, snapshot.id, source, host):
            LOG.info("Snapshot %s is now held by %s", snapshot.id, host)
            self._drop(context, snapshot, instance, source)
        return db_api.snapshot_get(context, snapshot.id)

    def _drop(self, context, snapshot, instance, source):
        """The old copy is no longer anybody's: delete it. Best effort: a
        copy left behind costs space on ``source``, never data."""
        try:
            self.compute_api.drop_snapshot_copy(
                context,
                source,
                instance.uuid,
                snapshot.snapshot_index,
                snapshot.disks,
            )
        except messaging.MessagingException as exc:
            LOG.error(
                "Snapshot %s now held by another host: its old copy on %s "
                "could not be deleted and stays there: %s",
                snapshot.id,
                source,
                exc,
            )


class RetiredHosts:
    """Periodic task: forget the compute agents of hosts Nova no longer
    has.

    An operator who retires a compute host deletes its ``nova-compute``
    service from Nova. Once Nova lists no such service on a host and
    Snapmanager's agent there has been silent for ``[conductor]
    service_down_time``, the agent's record is deleted, as
    ``snapmanager-manage service delete`` would: the file-backed
    snapshots stored there are then shown unavailable, never deleted. An
    agent that reports in again is recorded again. A host Nova still
    lists is never forgotten this way, however long its agent is down.
    """

    def __init__(self, compute, now=models.utcnow):
        """``compute``: :class:`snapmanager_nova.nova.LazyCompute`."""
        self.compute = compute
        self.now = now

    def run(self, context):
        """Returns the hosts forgotten."""
        if not self.compute.configured:
            return []
        try:
            in_nova = {
                service.host
                for service in self.compute.get().services(
                    binary="nova-compute"
                )
            }
        except (sdk_exc.SDKException, ks_exc.ClientException) as exc:
            LOG.warning("Cannot list Nova's compute services: %s", exc)
            return []
        since = self.now() - datetime.timedelta(
            seconds=CONF.conductor.service_down_time
        )
        alive = db_api.service_hosts_alive(
            context, db_api.COMPUTE_BINARY, since
        )
        forgotten = []
        for service in db_api.service_list(
            context, binary=db_api.COMPUTE_BINARY
        ):
            if service.host in in_nova or service.host in alive:
                continue
            if db_api.service_delete(
                context, db_api.COMPUTE_BINARY, service.host
            ):
                LOG.warning(
                    "Nova has no compute service on %s and its agent is "
                    "silent: forgotten; the file-backed snapshots stored "
                    "there are unavailable until an agent reports in there",
                    service.host,
                )
                forgotten.append(service.host)
        return forgotten
