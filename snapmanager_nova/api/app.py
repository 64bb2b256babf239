"""The WSGI application of snapmanager-api.

Layers, outermost first:

1. request ids (oslo.middleware): ``X-OpenStack-Request-Id`` on every
   response, and the id in the logs;
2. :class:`errors.FaultWrapper`: whatever fails becomes a JSON error;
3. the API version of every ``/v1/`` request (:mod:`api.microversion`),
   named on every answer to one;
4. the body size limit (``[api] max_request_body_size``, 413 beyond);
5. by path: ``/`` and ``/healthcheck`` answered without a token; every
   ``/v1/`` request through keystonemiddleware (or, with ``[api]
   auth_strategy = noauth``, the client's identity headers as they
   are), then the request context, then the v1 routes.
"""

from keystonemiddleware import auth_token
from oslo_log import log as logging
from oslo_middleware import request_id

from snapmanager_nova.api import body_limit
from snapmanager_nova.api import context as api_context
from snapmanager_nova.api import errors
from snapmanager_nova.api import microversion
from snapmanager_nova.api import nova as api_nova
from snapmanager_nova.api import router
from snapmanager_nova.api.handlers import operations
from snapmanager_nova.api.handlers import project_defaults
from snapmanager_nova.api.handlers import quota_sets
from snapmanager_nova.api.handlers import root
from snapmanager_nova.api.handlers import snapshot_policies
from snapmanager_nova.api.handlers import snapshots
from snapmanager_nova.api.handlers import stale_servers
from snapmanager_nova.compute import rpcapi as compute_rpcapi
from snapmanager_nova.db import models

LOG = logging.getLogger(__name__)


class PathDispatcher:
    """``/v1/...`` to the authenticated API, the rest to the public one."""

    def __init__(self, public, v1):
        self.public = public
        self.v1 = v1

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "") or "/"
        if path.startswith(router.V1_PREFIX):
            return self.v1(environ, start_response)
        return self.public(environ, start_response)


def _authenticated(application, conf):
    strategy = conf.api.auth_strategy
    if strategy == "noauth":
        LOG.warning(
            "[api] auth_strategy is noauth: every request is trusted to "
            "say who it comes from. Never use this outside tests."
        )
        return api_context.ContextMiddleware(
            application, require_project_header=True
        )
    # keystonemiddleware reads [keystone_authtoken] from our own config.
    return auth_token.AuthProtocol(
        api_context.ContextMiddleware(
            application, require_project_header=False
        ),
        {"oslo_config_config": conf},
    )


def create_app(conf, nova_servers=None, compute_api=None, now=None):
    """Build the WSGI application.

    :param conf: the parsed configuration (Snapmanager's ``CONF``; the
        policy enforcer reads the same).
    :param nova_servers: a :class:`api.nova.NovaServers`; by default
        Nova's API through openstacksdk with ``[nova]`` credentials.
    :param compute_api: a callable returning the compute agents' RPC
        client; by default :class:`compute.rpcapi.ComputeAPI`, created at
        the first cast.
    :param now: a callable returning the current aware time, from which
        new schedules' first runs are computed.
    """
    nova_servers = nova_servers or api_nova.SDKNovaServers(conf)
    compute_api = compute_api or compute_rpcapi.ComputeAPI
    now = now or models.utcnow
    v1_controllers = {
        "snapshot_policies": snapshot_policies.SnapshotPolicyController(
            conf, nova_servers, now
        ),
        "project_defaults": project_defaults.ProjectDefaultController(now),
        "snapshots": snapshots.SnapshotController(
            conf, nova_servers, compute_api
        ),
        "operations": operations.OperationController(nova_servers),
        "stale_servers": stale_servers.StaleServerController(conf, now),
        "quota_sets": quota_sets.QuotaSetController(),
    }
    public = router.Router(
        router.PUBLIC_ROUTES, {"root": root.RootController(conf)}
    )
    v1 = _authenticated(router.Router(router.V1_ROUTES, v1_controllers), conf)
    application = PathDispatcher(public, v1)
    application = body_limit.BodySizeLimit(
        application, conf.api.max_request_body_size
    )
    application = microversion.MicroversionMiddleware(
        application, router.V1_PREFIX
    )
    application = errors.FaultWrapper(application)
    return request_id.RequestId(application)
