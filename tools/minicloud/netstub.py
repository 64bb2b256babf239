"""The mini-cloud's stand-in for the network (Neutron) endpoint.

This is not Neutron. Nova looks a `network` endpoint up in the catalog for
every server, even one created with `--nic none`: without one, server
show, list and delete fail with EndpointNotFound. For servers without
ports, all Nova asks the endpoint are questions whose true answer is
"nothing": the ports whose device_id is the server, the networks, the
extensions. So this process answers

- GET /                 with a version document naming v2.0,
- GET on any collection (/v2.0/ports, /v2.0/networks?...) with an empty
  list under the collection's key,
- anything else (one resource by ID, POST, PUT, DELETE) with Neutron's
  404 body,

and logs every request, so a test that reaches for real networking shows
up in its log instead of being silently pretended. It uses the standard
library only and runs with any Python 3.

Usage: netstub.py [--host 127.0.0.1] [--port 9696]
"""

import argparse
import http.server
import json
import sys
import urllib.parse

VERSION = "v2.0"


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "minicloud-netstub"

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path.rstrip("/")
        parts = [p for p in path.split("/") if p]
        if not parts:
            self._reply(200, self._versions())
        elif parts == [VERSION]:
            self._reply(200, {"resources": []})
        elif len(parts) == 2 and parts[0] == VERSION:
            # Neutron names a collection's key like its path, with
            # underscores: /v2.0/security-groups -> "security_groups".
            name = parts[1].removesuffix(".json").replace("-", "_")
            self._reply(200, {name: []})
        else:
            self._not_found()

    def do_POST(self):
        self._not_found()

    do_PUT = do_POST
    do_DELETE = do_POST

    def _versions(self):
        host = self.headers.get("Host", "127.0.0.1")
        return {
            "versions": [
                {
                    "id": VERSION,
                    "status": "CURRENT",
                    "links": [
                        {
                            "rel": "self",
                            "href": "http://%s/%s/" % (host, VERSION),
                        }
                    ],
                }
            ]
        }

    def _not_found(self):
        self._reply(
            404,
            {
                "NeutronError": {
                    "type": "HTTPNotFound",
                    "message": "The mini-cloud has no networking: "
                    "this endpoint only answers that nothing exists.",
                    "detail": "",
                }
            },
        )

    def _reply(self, status, body):
        # Drain a request body so the client never sees a reset.
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.log_date_time_string(), fmt % args))
        sys.stderr.flush()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9696)
    args = parser.parse_args(argv)
    server = http.server.ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    sys.stderr.write("netstub: listening on %s:%d\n" % (args.host, args.port))
    sys.stderr.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
