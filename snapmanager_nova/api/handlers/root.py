"""The version document and the healthcheck; neither needs a token."""

from oslo_middleware import healthcheck

from snapmanager_nova.api import errors
from snapmanager_nova.api import microversion
from snapmanager_nova.api import responses


def _hidden(environ, start_response):
    # oslo.middleware's healthcheck passes on requests it is configured
    # to ignore (a source outside [healthcheck] allowed_source_ranges);
    # those get what any unknown path gets.
    raise errors.HTTPError(404, "No resource at /healthcheck.")


class RootController:
    def __init__(self, conf):
        self._healthcheck = healthcheck.Healthcheck(_hidden, conf)

    def versions(self, req):
        return responses.json_response(
            200,
            {
                "versions": [
                    {
                        "id": "v1",
                        "status": "CURRENT",
                        # As Nova's: the range a client may ask for in
                        # OpenStack-API-Version.
                        "min_version": str(microversion.min_version()),
                        "version": str(microversion.max_version()),
                        "links": [
                            {
                                "rel": "self",
                                "href": f"{req.application_url}/v1/",
                            }
                        ],
                    }
                ]
            },
        )

    def healthcheck(self, req):
        return req.get_response(self._healthcheck)
