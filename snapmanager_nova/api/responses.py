"""Building the API's JSON responses."""

import json

import webob

JSON_TYPE = "application/json"


def json_response(status, body, headers=None):
    """A response whose body is ``body`` serialized as JSON."""
    # JSON is UTF-8 by definition: no charset parameter.
    response = webob.Response(
        status=status,
        body=json.dumps(body).encode("utf-8"),
        headerlist=[("Content-Type", JSON_TYPE)],
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def no_content():
    """A 204 response: nothing to say, and no body to say it in."""
    return webob.Response(status=204, headerlist=[])
