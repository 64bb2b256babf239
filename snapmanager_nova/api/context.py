"""The request context of every /v1 request, built from its headers.

Behind keystonemiddleware the identity headers (``X-Project-Id``,
``X-User-Id``, ``X-Roles``...) are the ones it set after validating the
token; it strips any the client sent. With ``[api] auth_strategy =
noauth`` nothing validates them: the client's headers are taken as they
are, which is only fit for tests.
"""

import webob.dec

from snapmanager_nova import context as sm_context
from snapmanager_nova.api import errors

ENVIRON_KEY = "snapmanager.context"


def get(req):
    """The RequestContext of a request that went through the middleware."""
    return req.environ[ENVIRON_KEY]


class ContextMiddleware:
    def __init__(self, application, require_project_header):
        self.application = application
        # In noauth mode no token says who the caller is: a request that
        # does not say it either is unauthenticated, as it would be
        # without a token behind keystonemiddleware.
        self.require_project_header = require_project_header

    @webob.dec.wsgify
    def __call__(self, req):
        if self.require_project_header and not req.headers.get("X-Project-Id"):
            raise errors.HTTPError(
                401,
                "The request you have made requires authentication "
                "(noauth: send X-Project-Id, X-User-Id and X-Roles).",
            )
        req.environ[ENVIRON_KEY] = sm_context.RequestContext.from_environ(
            req.environ
        )
        return req.get_response(self.application)
