"""snapmanager-api: the REST API on a small threaded WSGI server.

Meant for development and tests: the standard library's wsgiref, one
thread per connection, HTTP/1.0. Production deployments run
``snapmanager_nova.wsgi.api:application`` under a real WSGI server
(uwsgi, mod_wsgi), which brings TLS, worker processes and keep-alive.
"""

import socket
import socketserver
import sys
import threading
from wsgiref import simple_server

from oslo_log import log as logging

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import service
from snapmanager_nova.api import app

CONF = sm_conf.CONF
LOG = logging.getLogger(__name__)


class _RequestHandler(simple_server.WSGIRequestHandler):
    def log_message(self, format, *args):
        # An access log line through oslo.log, not wsgiref's stderr.
        LOG.info("%s %s", self.address_string(), format % args)


class _ThreadingWSGIServer(
    socketserver.ThreadingMixIn, simple_server.WSGIServer
):
    daemon_threads = True
    allow_reuse_address = True


class WSGIService:
    """Serve ``application`` on ``host:port`` from a background thread.

    Has the start/stop interface :func:`service.serve` drives.
    """

    def __init__(self, application, host, port):
        self.application = application
        self.host = host
        self.port = port
        self._server = None
        self._thread = None

    def start(self):
        server_class = _ThreadingWSGIServer
        if ":" in self.host:
            server_class = type(
                "_ThreadingWSGIServer6",
                (_ThreadingWSGIServer,),
                {"address_family": socket.AF_INET6},
            )
        self._server = simple_server.make_server(
            self.host,
            self.port,
            self.application,
            server_class=server_class,
            handler_class=_RequestHandler,
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="wsgi", daemon=True
        )
        self._thread.start()
        LOG.info(
            "snapmanager-api listening on %s port %d",
            self.host,
            self._server.server_port,
        )

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
        LOG.info("snapmanager-api stopped")


def main(argv=None):
    service.prepare(argv)
    application = app.create_app(CONF)
    return service.serve(
        WSGIService(application, CONF.api.bind_host, CONF.api.bind_port)
    )


if __name__ == "__main__":
    sys.exit(main())
