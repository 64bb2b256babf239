"""The ``openstack`` command's client of Snapmanager's REST API v1.

The client itself is :mod:`snapmanager_nova.apiclient`, shared with the
Horizon plugin; this module gives it what the command line needs: an
error answer is a ``CommandError``, so ``openstack`` prints the API's
message as it is, and a missing endpoint names the option that gives
one.
"""

from osc_lib import exceptions

from snapmanager_nova import apiclient

# Re-exported: the commands and their tests know the client by this
# module.
API_VERSION = apiclient.API_VERSION
SERVICE_TYPE = apiclient.SERVICE_TYPE
VERSION_PREFIX = apiclient.VERSION_PREFIX
versioned_endpoint = apiclient.versioned_endpoint


class APIError(apiclient.APIError, exceptions.CommandError):
    """The API refused a request; ``str()`` is the API's message."""


class Client(apiclient.Client):
    error_class = APIError

    def _no_endpoint(self):
        return exceptions.CommandError(
            f"No '{SERVICE_TYPE}' endpoint in the service catalog; "
            "give the API's URL with --os-snapmanager-endpoint"
        )
