"""Just enough of the OpenStack REST APIs to set the mini-cloud up.

Standard library only, so that `up` runs with the system Python before any
client library exists. Each helper makes the few calls one setup step
needs; the tests themselves use openstacksdk.
"""

import calendar
import json
import time
import urllib.error
import urllib.request

from . import config


class HttpError(Exception):
    def __init__(self, method, url, status, body):
        super().__init__(
            "%s %s: HTTP %s %s" % (method, url, status, body[:500])
        )
        self.status = status


def request(method, url, body=None, token=None, headers=None, timeout=60):
    """One HTTP request; returns (status, headers, decoded JSON or None)."""
    all_headers = {"Accept": "application/json"}
    data = None
    if isinstance(body, bytes):
        data = body
        all_headers["Content-Type"] = "application/octet-stream"
    elif body is not None:
        data = json.dumps(body).encode()
        all_headers["Content-Type"] = "application/json"
    if token:
        all_headers["X-Auth-Token"] = token
    all_headers.update(headers or {})
    req = urllib.request.Request(
        url, data=data, headers=all_headers, method=method
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, resp_headers, raw = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        status, resp_headers, raw = exc.code, exc.headers, exc.read()
    if status >= 400:
        raise HttpError(method, url, status, raw.decode(errors="replace"))
    try:
        payload = json.loads(raw) if raw else None
    except ValueError:
        payload = None
    return status, resp_headers, payload


def answers(url, timeout=2):
    """Whether an HTTP server answers at `url` (any status counts)."""
    try:
        request("GET", url, timeout=timeout)
    except HttpError:
        return True
    except OSError:
        return False
    return True


def token(username, project, password=config.PASSWORD):
    """A project-scoped Keystone token for a user of the Default domain."""
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": username,
                        "domain": {"id": "default"},
                        "password": password,
                    }
                },
            },
            "scope": {
                "project": {"name": project, "domain": {"id": "default"}}
            },
        }
    }
    _, headers, _ = request("POST", config.AUTH_URL + "/auth/tokens", body)
    return headers["X-Subject-Token"]


class Keystone:
    """Creates the projects, users, role assignments and catalog.

    It runs once, on the fresh database `keystone-manage bootstrap` has
    just filled (admin user, admin project, roles, identity endpoints), so
    it creates without looking first: an interrupted provisioning starts
    again from empty databases.
    """

    def __init__(self, admin_token):
        self.token = admin_token
        self.roles = {}

    def _call(self, method, path, body=None):
        return request(method, config.AUTH_URL + path, body, self.token)[2]

    def _create(self, kind, body):
        return self._call("POST", "/%ss" % kind, {kind: body})[kind]["id"]

    def _grant(self, project_id, user_id, role):
        self._call(
            "PUT",
            "/projects/%s/users/%s/roles/%s"
            % (project_id, user_id, self.roles[role]),
        )

    def setup(self):
        """Projects, users and catalog; returns {project name: id}."""
        self.roles = {
            role["name"]: role["id"]
            for role in self._call("GET", "/roles")["roles"]
        }
        admin = self._call("GET", "/projects?name=admin")["projects"]
        projects = {"admin": admin[0]["id"]}
        for name, description in (
            ("demo", "A tenant for the tests and the quickstart"),
            ("other", "A second tenant that must not see demo's servers"),
            ("service", "The OpenStack services' own users"),
        ):
            projects[name] = self._create(
                "project",
                {
                    "name": name,
                    "domain_id": "default",
                    "description": description,
                },
            )
        users = [
            (name, person["project"], [person["role"]])
            for name, person in config.PEOPLE.items()
            if name != "admin"
        ]
        # Service users get `admin` (what some of the services' policies
        # still check) and `service` (what the new defaults check for
        # service-to-service calls).
        users += [
            (name, "service", ["admin", "service"])
            for name in config.SERVICE_USERS
        ]
        for name, project, roles in users:
            user_id = self._create(
                "user",
                {
                    "name": name,
                    "domain_id": "default",
                    "password": config.PASSWORD,
                    "default_project_id": projects[project],
                },
            )
            for role in roles:
                self._grant(projects[project], user_id, role)
        for service_type, name, url in config.CATALOG:
            service_id = self._create(
                "service", {"type": service_type, "name": name}
            )
            # The services look endpoints up as `internal` first, the
            # clients as `public`: both are the same loopback URL.
            for interface in ("public", "internal"):
                self._create(
                    "endpoint",
                    {
                        "service_id": service_id,
                        "interface": interface,
                        "url": url,
                        "region_id": config.REGION,
                    },
                )
        return projects


def ensure_image(admin_token, path):
    """Upload the tiny image once; returns its ID."""
    base = config.url("glance", "/v2/images")
    found = request(
        "GET", base + "?name=" + config.IMAGE_NAME, None, admin_token
    )[2]
    for image in found["images"]:
        if image["status"] == "active":
            return image["id"]
        # A half-made image from an interrupted `up`: start again.
        request("DELETE", base + "/" + image["id"], None, admin_token)
    body = {
        "name": config.IMAGE_NAME,
        "disk_format": "qcow2",
        "container_format": "bare",
        "visibility": "public",
    }
    image_id = request("POST", base, body, admin_token)[2]["id"]
    with open(path, "rb") as data:
        request(
            "PUT", "%s/%s/file" % (base, image_id), data.read(), admin_token
        )
    return image_id


def ensure_flavor(admin_token):
    """Create the tiny flavor once; returns its ID."""
    base = config.url("nova-api", "/v2.1/flavors")
    for flavor in request("GET", base, None, admin_token)[2]["flavors"]:
        if flavor["name"] == config.FLAVOR_NAME:
            return flavor["id"]
    body = {"flavor": dict(config.FLAVOR, name=config.FLAVOR_NAME)}
    return request("POST", base, body, admin_token)[2]["flavor"]["id"]


def compute_services(admin_token):
    """Nova's service records (binary, host, state, updated_at...)."""
    url = config.url("nova-api", "/v2.1/os-services")
    return request("GET", url, None, admin_token)[2]["services"]


def resource_providers(admin_token):
    """Placement's resource providers: a compute node registers one as
    soon as its record exists, before any cell maps its host (Nova's own
    os-hypervisors API hides unmapped hosts)."""
    url = config.url("placement", "/resource_providers")
    return request("GET", url, None, admin_token)[2]["resource_providers"]


def utc_seconds(timestamp):
    """Nova's naive UTC ISO timestamps as seconds since the epoch."""
    parsed = time.strptime(timestamp.split(".")[0], "%Y-%m-%dT%H:%M:%S")
    return calendar.timegm(parsed)
