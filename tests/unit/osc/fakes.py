"""Fakes for the plugin's unit tests: the HTTP layer and OSC's app.

The commands run for real (argparse, cliff's formatters, osc-lib); only
what would reach a cloud is replaced: Nova's server lookup, and the
transport under keystoneauth's session (:class:`FakeTransport`), so the
client's requests are recorded exactly as they would be sent.
"""

import io
import json
import types
import urllib.parse

import requests
import requests.adapters
from keystoneauth1 import noauth
from keystoneauth1 import session as ksa_session

from snapmanager_nova.osc.v1 import client as sm_client

ENDPOINT = "http://snapmanager.test:8799"
SERVER_ID = "9b0f1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d"
SERVER_NAME = "web"
OTHER_SERVER_ID = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
PROJECT_ID = "5e1c0000000000000000000000000001"
SNAPSHOT_ID = "7d2a0000-0000-4000-8000-000000000001"
OPERATION_ID = "c0de0000-0000-4000-8000-000000000001"


def schedule(spec="daily@02:30", timezone="Europe/Berlin", **fields):
    value = {
        "id": "1c4e0000-0000-4000-8000-%012d" % len(spec + timezone),
        "spec": spec,
        "family": spec.split("@")[0],
        "timezone": timezone,
        "retention": {"keep_count": 7, "max_age": 2592000},
        "enabled": True,
        "next_run_at": "2026-03-29T01:00:00Z",
        "last_run_at": None,
        "created_at": "2026-03-28T12:00:00Z",
        "updated_at": None,
    }
    value.update(fields)
    return value


def policy(*schedules, keep_after_delete=False, server_id=SERVER_ID):
    return {
        "server_id": server_id,
        "server_name": SERVER_NAME,
        "project_id": PROJECT_ID,
        "keep_after_delete": keep_after_delete,
        "uses_project_default": not schedules,
        "schedules": list(schedules),
    }


def snapshot(status="available", **fields):
    value = {
        "id": SNAPSHOT_ID,
        "server_id": SERVER_ID,
        "server_name": SERVER_NAME,
        "project_id": PROJECT_ID,
        "schedule_id": None,
        "status": status,
        # Microversion 1.4, as lists and show ask for it.
        "unavailable_reason": None,
        "window_start": "2026-03-28T12:00:00Z",
        "backend": "file",
        "host": None,
        "disks": [{"target": "vda", "size": 1073741824}],
        "size_bytes": 1073741824,
        "quiesced": False,
        "error": None,
        "created_at": "2026-03-28T12:00:00Z",
        "updated_at": None,
        "completed_at": None,
        "expires_at": None,
        "deleted_at": None,
    }
    value.update(fields)
    return value


def operation(state="pending", progress=0, step=None, **fields):
    value = {
        "id": OPERATION_ID,
        "type": "restore",
        "server_id": SERVER_ID,
        "snapshot_id": SNAPSHOT_ID,
        "project_id": PROJECT_ID,
        "state": state,
        "progress": progress,
        "step": step,
        "error": None,
        "created_at": "2026-03-28T12:00:00Z",
        "updated_at": None,
        "finished_at": None,
    }
    value.update(fields)
    return value


def error(code, message):
    return code, {"error": {"code": code, "title": "x", "message": message}}


class FakeTransport(requests.adapters.BaseAdapter):
    """Answers requests from a table; records what was sent.

    ``answers[(method, path)]`` is a ``(status, body)`` pair, or a list
    of them answered in turn (the last one repeats). A request not in
    the table fails the test with what it was.
    """

    def __init__(self):
        super().__init__()
        self.answers = {}
        self.sent = []

    def answer(self, method, path, status, body=None):
        self.answers.setdefault((method, path), []).append((status, body))

    def requests_to(self, method, path):
        return [r for r in self.sent if (r.method, r.path) == (method, path)]

    def send(self, request, **kwargs):
        url = urllib.parse.urlsplit(request.url)
        body = json.loads(request.body) if request.body else None
        self.sent.append(
            types.SimpleNamespace(
                method=request.method,
                path=url.path,
                query=urllib.parse.parse_qs(url.query),
                body=body,
                headers=request.headers,
            )
        )
        queue = self.answers.get((request.method, url.path))
        assert queue, f"unexpected {request.method} {request.url}"
        status, answer = queue.pop(0) if len(queue) > 1 else queue[0]
        response = requests.Response()
        response.status_code = status
        response.url = request.url
        response.request = request
        if answer is not None:
            response.headers["Content-Type"] = "application/json"
            response._content = json.dumps(answer).encode()
        else:
            response._content = b""
        return response

    def close(self):
        pass


def make_client(endpoint=ENDPOINT):
    """A real client on a keystoneauth session whose transport is fake."""
    transport = FakeTransport()
    session = ksa_session.Session(auth=noauth.NoAuth())
    session.session.mount("http://", transport)
    return sm_client.Client(session, endpoint_override=endpoint), transport


class FakeCompute:
    """Nova's server lookup, as openstacksdk's compute proxy offers it."""

    def __init__(self, servers):
        self.servers = servers  # name -> id

    def find_server(self, name_or_id, ignore_missing=True, **kwargs):
        for name, server_id in self.servers.items():
            if name_or_id in (name, server_id):
                return types.SimpleNamespace(id=server_id, name=name)
        assert ignore_missing
        return None


class FakeTTY(io.StringIO):
    def __init__(self, tty=False):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


def make_app(snapmanager, servers=None, project_id=PROJECT_ID):
    """The parts of OSC's app a command touches."""
    auth_ref = types.SimpleNamespace(
        project_id=project_id,
        project_name="demo",
        project_domain_id="default",
        project_domain_name="Default",
    )
    client_manager = types.SimpleNamespace(
        snapmanager=snapmanager,
        compute=FakeCompute(
            {"web": SERVER_ID} if servers is None else servers
        ),
        auth_ref=auth_ref,
    )
    return types.SimpleNamespace(
        client_manager=client_manager,
        stdout=FakeTTY(),
        stderr=FakeTTY(),
        options=types.SimpleNamespace(debug=False),
    )


def run(command_class, app, *argv):
    """Parse argv as ``openstack`` would and run the command."""
    command = command_class(app, None)
    parser = command.get_parser("openstack")
    parsed_args = parser.parse_args(list(argv))
    return command.run(parsed_args)
