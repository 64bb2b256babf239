"""Who owns a server, and where it runs: asked of Nova.

The API decides what a tenant may do to a server from Nova's record of
it (its project), and where to send work from the host Nova placed it
on. It asks with Snapmanager's service credentials from ``[nova]``, so
it sees any project's servers and their host; the tenant's token would
see neither another project's server (which is the point) nor the host.

:class:`NovaServers` is the interface the handlers use;
:class:`SDKNovaServers` implements it with openstacksdk. Tests give the
application a fake of the interface instead.
"""

import abc
import dataclasses

from keystoneauth1 import exceptions as ks_exc
from openstack import exceptions as sdk_exc
from oslo_log import log as logging
from oslo_utils import uuidutils

from snapmanager_nova import exception
from snapmanager_nova import nova

LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Server:
    """What Snapmanager needs to know of a Nova server.

    ``host`` is None while the server has no compute host (building, or
    shelved and offloaded); ``status`` is Nova's (``ACTIVE``,
    ``SHUTOFF``...); ``task_state`` is Nova's task in progress
    (``migrating``...), None when there is none.
    """

    id: str
    project_id: str
    host: str | None
    status: str
    name: str
    task_state: str | None = None


class NovaServers(abc.ABC):
    @abc.abstractmethod
    def get(self, context, server_id):
        """Return the :class:`Server` ``server_id``.

        :raises ServerNotFound: Nova does not know the server (or the id
            is not a server id at all).
        :raises ServiceUnavailable: Nova could not be asked.
        """


class SDKNovaServers(NovaServers):
    """:class:`NovaServers` through openstacksdk and keystoneauth
    (:mod:`snapmanager_nova.nova`, connected on first use)."""

    def __init__(self, conf):
        self._compute = nova.LazyCompute(conf)

    def get(self, context, server_id):
        # Nova's ids are UUIDs; anything else cannot name a server, and
        # is not worth a request to Nova.
        if not uuidutils.is_uuid_like(server_id):
            raise exception.ServerNotFound(server_id=server_id)
        try:
            server = self._compute.get().get_server(server_id)
        except sdk_exc.NotFoundException:
            raise exception.ServerNotFound(server_id=server_id) from None
        except (sdk_exc.SDKException, ks_exc.ClientException) as exc:
            LOG.warning(
                "Looking up server %s in Nova failed: %s", server_id, exc
            )
            raise exception.ServiceUnavailable(
                service="Nova's compute API",
                reason="the server's record could not be read",
            ) from exc
        return Server(
            id=server.id,
            project_id=server.project_id,
            host=server.compute_host,
            status=server.status,
            name=server.name,
            task_state=server.task_state,
        )
