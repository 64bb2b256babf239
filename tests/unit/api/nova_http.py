"""A stand-in for Nova's compute API over HTTP, in a thread.

It answers the two requests openstacksdk makes to look up a server: the
version document (microversion discovery) and ``GET /servers/{id}``,
with the fields Nova returns to an admin. Used to test
:class:`snapmanager_nova.api.nova.SDKNovaServers` for real, and by the
functional tests as the Nova of a snapmanager-api process.
"""

import http.server
import json
import threading

API_ROOT = "/v2.1"


class NovaStub:
    def __init__(self):
        self.servers = {}
        self.requests = []
        # Status of every answer when set (e.g. 500), for failure tests.
        self.fail_with = None
        self._httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), self._handler_class()
        )
        self._thread = None

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self._httpd.server_port}{API_ROOT}"

    def add(self, server_id, project_id, host="compute-1", status="ACTIVE"):
        self.servers[server_id] = {
            "id": server_id,
            "name": f"vm-{server_id[:8]}",
            "status": status,
            "tenant_id": project_id,
            "user_id": "someone",
            "OS-EXT-SRV-ATTR:host": host,
            "OS-EXT-STS:task_state": None,
        }

    def start(self):
        # A short poll interval: stop() waits for the loop to notice.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self):
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def _answer(self, path):
        if self.fail_with is not None:
            return self.fail_with, {"computeFault": {"code": self.fail_with}}
        if path.rstrip("/") == API_ROOT:
            return 200, {
                "version": {
                    "id": "v2.1",
                    "status": "CURRENT",
                    "version": "2.96",
                    "min_version": "2.1",
                    "links": [{"rel": "self", "href": self.endpoint + "/"}],
                }
            }
        prefix = API_ROOT + "/servers/"
        if path.startswith(prefix) and path[len(prefix) :] in self.servers:
            return 200, {"server": self.servers[path[len(prefix) :]]}
        return 404, {
            "itemNotFound": {"code": 404, "message": "Instance not found."}
        }

    def _handler_class(self):
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                stub.requests.append((self.path, dict(self.headers)))
                status, body = stub._answer(self.path)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format, *args):
                pass

        return Handler
