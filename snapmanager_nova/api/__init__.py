"""snapmanager-api: the REST API v1.

The WSGI application is built by :func:`snapmanager_nova.api.app.create_app`;
``snapmanager_nova.wsgi.api:application`` is the module a WSGI server
loads, and ``snapmanager-api`` serves the same application with a small
threaded server for development and tests. The API itself is described in
``doc/source/api.rst`` and ``doc/api/openapi.yaml``.
"""
