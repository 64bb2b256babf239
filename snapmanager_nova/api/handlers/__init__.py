"""Request handlers, one module per resource.

Each handler takes the webob request and the path's parameters and
returns a webob response; errors are raised as Snapmanager exceptions and
turned into JSON by :mod:`snapmanager_nova.api.errors`. Every handler
that touches a resource first finds the project that owns it (in Nova or
in Snapmanager's database, never in the request) and enforces its policy
rule against that project.
"""
