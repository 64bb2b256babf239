"""API microversions: which ones the API serves, which one a request gets.

A client names the version it speaks in the standard header,
``OpenStack-API-Version: snapmanager 1.0``, or asks for ``latest``;
without one it gets the oldest version, so a client written against 1.0
keeps working as versions are added. The header may carry entries for
other services, comma-separated; they are ignored, and of several
entries for this one the last counts. A value that is not ``X.Y`` (or
``latest``) is refused with 400, a version outside the served range with
406, as Nova and Placement do.

Every ``/v1`` response says with ``Vary`` that it depends on the header
and, unless the header was refused, names the version it was served at
in ``OpenStack-API-Version``. A handler asks the request's version with
:func:`get` and :func:`at_least` to choose what it accepts and shows.
"""

import re
import typing

import webob.dec

from snapmanager_nova.api import errors

SERVICE_TYPE = "snapmanager"
HEADER = "OpenStack-API-Version"
LATEST = "latest"
ENVIRON_KEY = "snapmanager.microversion"

# Every version the API has served, oldest first, each with what it
# changed. Add one at the end for every change a client can see (a new
# field, parameter or route), make the handler check it with
# at_least(), and describe it in doc/source/api.rst and
# doc/api/openapi.yaml. Only the oldest ones may ever be dropped, by
# raising the minimum, which breaks the clients that still speak them.
VERSIONS = [
    "1.0",  # the initial API
    "1.1",  # quota sets: GET, PUT, DELETE /v1/quota-sets/{project_id}
    "1.2",  # the freshness check: GET /v1/stale-servers
    "1.3",  # retry or abandon a failed restore:
    #         POST /v1/operations/{operation_id}/action
    "1.4",  # snapshots: status ``unavailable`` with ``unavailable_reason``
    #         (their host is gone for good), and ``host`` for those who
    #         see error details
]

# Nova's form: no leading zeros, no sign, no spaces inside.
_FORMAT = re.compile(r"^([1-9][0-9]*)\.(0|[1-9][0-9]*)$")


class Version(typing.NamedTuple):
    """A version as ``(major, minor)``, which compares as numbers."""

    major: int
    minor: int

    @classmethod
    def parse(cls, text):
        """The version ``text`` (``"1.10"``) names; None if it names none."""
        match = _FORMAT.match(text)
        return match and cls(int(match.group(1)), int(match.group(2)))

    def __str__(self):
        return f"{self.major}.{self.minor}"


def min_version():
    """The oldest version served: what a request without the header gets."""
    return Version.parse(VERSIONS[0])


def max_version():
    """The newest version served: what ``latest`` asks for."""
    return Version.parse(VERSIONS[-1])


def _asked(header_value):
    """What the header asks of this service: the text after its name,
    "" for its name alone, None when it does not name it."""
    asked = None
    for entry in (header_value or "").split(","):
        words = entry.split(None, 1)
        if words and words[0].lower() == SERVICE_TYPE:
            asked = words[1].strip() if len(words) > 1 else ""
    return asked


def negotiate(header_value):
    """The version to serve a request whose header is ``header_value``.

    :raises errors.HTTPError: 400 if the value is not a version, 406 if
        the API does not serve it.
    """
    asked = _asked(header_value)
    if asked is None:
        return min_version()
    if asked == LATEST:
        return max_version()
    version = Version.parse(asked)
    served = f"this API serves {min_version()} to {max_version()}"
    # The answer depends on the header, whether it is served or refused.
    vary = {"Vary": HEADER}
    if version is None:
        raise errors.HTTPError(
            400,
            f"{HEADER}: {SERVICE_TYPE} {asked!r} is not a version: send "
            f"'{SERVICE_TYPE} X.Y' ({served}) or '{SERVICE_TYPE} {LATEST}'.",
            headers=vary,
        )
    if not min_version() <= version <= max_version():
        raise errors.HTTPError(
            406,
            f"{HEADER}: {SERVICE_TYPE} {version} is not supported; {served}.",
            headers=vary,
        )
    return version


def get(req):
    """The version a request is served at."""
    return req.environ[ENVIRON_KEY]


def at_least(req, version):
    """Whether the request is served at ``version`` (``"1.1"``) or later."""
    return get(req) >= Version.parse(version)


class MicroversionMiddleware:
    """Negotiate the version of every request under ``prefix``.

    It sits outside everything else that answers such requests (the
    body size limit, authentication, the routes), so every answer under
    the prefix, an error too, names the version it was served at.
    """

    def __init__(self, application, prefix):
        self.application = application
        self.prefix = prefix

    @webob.dec.wsgify
    def __call__(self, req):
        if not req.path_info.startswith(self.prefix):
            return req.get_response(self.application)
        version = negotiate(req.headers.get(HEADER))
        req.environ[ENVIRON_KEY] = version
        try:
            response = req.get_response(self.application)
        except Exception as exc:
            response = errors.to_response(exc)
        response.headers[HEADER] = f"{SERVICE_TYPE} {version}"
        response.vary = (*(response.vary or ()), HEADER)
        return response
