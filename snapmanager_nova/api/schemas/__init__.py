"""JSON Schemas of the API's request bodies and query strings.

One module per resource. Response shapes are described in
``doc/api/openapi.yaml``; the tests check real responses against it.
"""
