"""Errors as JSON: every failure the API answers has the same body.

``{"error": {"code": 404, "title": "Not Found", "message": "..."}}``,
the shape keystonemiddleware already uses for its 401, so a client parses
one format whichever layer refused it. :class:`FaultWrapper` is the
outermost layer of the application: whatever escapes a handler becomes
such a response, and anything unexpected becomes a 500 whose message
gives nothing away (the details go to the log, under the request id).
"""

import http

import webob.dec
from oslo_log import log as logging

from snapmanager_nova import exception
from snapmanager_nova.api import responses

LOG = logging.getLogger(__name__)


class HTTPError(Exception):
    """An error of the HTTP exchange itself, not of Snapmanager's domain.

    For instance an unknown path (404), a method the path does not have
    (405), a body too large (413) or not JSON (415).
    """

    def __init__(self, code, message, headers=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_body(code, message):
    return {
        "error": {
            "code": code,
            "title": http.HTTPStatus(code).phrase,
            "message": message,
        }
    }


def error_response(code, message, headers=None):
    return responses.json_response(
        code, error_body(code, message), headers=headers
    )


def to_response(exc):
    """The JSON response for an exception raised while serving a request."""
    if isinstance(exc, HTTPError):
        return error_response(exc.code, exc.message, exc.headers)
    if isinstance(exc, exception.SnapmanagerException) and exc.code < 500:
        # Some say when to try again (429's Retry-After).
        return error_response(
            exc.code, exc.message, getattr(exc, "headers", None)
        )
    if isinstance(exc, exception.SnapmanagerException):
        # Our own 5xx messages (a service unavailable) are written for
        # tenants; they say what is down, not how.
        LOG.error("Request failed: %s", exc.message)
        return error_response(exc.code, exc.message)
    LOG.exception("Unexpected error while serving the request")
    return error_response(
        500,
        "The server could not complete the request; the error is logged "
        "under this request's id.",
    )


class FaultWrapper:
    """Turn any exception of the wrapped application into a JSON error."""

    def __init__(self, application):
        self.application = application

    @webob.dec.wsgify
    def __call__(self, req):
        try:
            return req.get_response(self.application)
        except Exception as exc:
            return to_response(exc)
