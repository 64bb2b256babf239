"""Snapmanager's entries in the mini-cloud's Keystone.

The mini-cloud creates its users and catalog once, when it provisions
its databases; Snapmanager's are made here, on every `up`, looking
first: the same cloud is brought up again and again, and may have been
provisioned before any of these existed.
"""

from ._tools import minicloud

config = minicloud.config
rest = minicloud.rest

SERVICE_TYPE = "snapmanager"
SERVICE_NAME = "snapmanager"
# Snapmanager's service user. `admin` because the API and the conductor
# must read every project's servers and their compute host in Nova (and
# lock, stop and start them for a restore), which Nova's default policy
# allows admins only; `service` for the service-to-service defaults.
SERVICE_USER = "snapmanager"
SERVICE_USER_ROLES = ("admin", "service")


class Keystone:
    """Idempotent creation of users, role assignments and endpoints."""

    def __init__(self, projects):
        self.token = rest.token("admin", "admin")
        self.projects = projects
        self.roles = {
            role["name"]: role["id"] for role in self._get("/roles")["roles"]
        }

    def _get(self, path):
        return rest.request("GET", config.AUTH_URL + path, None, self.token)[2]

    def _send(self, method, path, body=None):
        return rest.request(method, config.AUTH_URL + path, body, self.token)[
            2
        ]

    def ensure_user(self, name, project, roles):
        found = self._get("/users?domain_id=default&name=%s" % name)["users"]
        if found:
            user_id = found[0]["id"]
        else:
            user_id = self._send(
                "POST",
                "/users",
                {
                    "user": {
                        "name": name,
                        "domain_id": "default",
                        "password": config.PASSWORD,
                        "default_project_id": self.projects[project],
                    }
                },
            )["user"]["id"]
        for role in roles:
            # Granting a role the user has already is a no-op (204).
            self._send(
                "PUT",
                "/projects/%s/users/%s/roles/%s"
                % (self.projects[project], user_id, self.roles[role]),
            )

    def ensure_service(self, service_type, name, url):
        found = self._get("/services?type=%s" % service_type)["services"]
        if found:
            service_id = found[0]["id"]
        else:
            service_id = self._send(
                "POST",
                "/services",
                {
                    "service": {
                        "type": service_type,
                        "name": name,
                        "description": "Scheduled, restorable snapshots "
                        "of Nova servers",
                    }
                },
            )["service"]["id"]
        endpoints = {
            endpoint["interface"]: endpoint
            for endpoint in self._get("/endpoints?service_id=%s" % service_id)[
                "endpoints"
            ]
        }
        # As for the mini-cloud's own services: the clients look for the
        # public endpoint, services for the internal one; both are the
        # same loopback URL.
        for interface in ("public", "internal"):
            endpoint = endpoints.get(interface)
            if endpoint is None:
                self._send(
                    "POST",
                    "/endpoints",
                    {
                        "endpoint": {
                            "service_id": service_id,
                            "interface": interface,
                            "url": url,
                            "region_id": config.REGION,
                        }
                    },
                )
            elif endpoint["url"] != url:
                self._send(
                    "PATCH",
                    "/endpoints/%s" % endpoint["id"],
                    {"endpoint": {"url": url}},
                )


def register(projects, api_url):
    """Snapmanager's service user and catalog entry, and the mini-cloud's
    people a cloud provisioned before they were added lacks (demo-reader).

    `projects` maps the mini-cloud's project names to their IDs.
    """
    keystone = Keystone(projects)
    for name, person in config.PEOPLE.items():
        if name != "admin":
            keystone.ensure_user(name, person["project"], [person["role"]])
    keystone.ensure_user(SERVICE_USER, "service", SERVICE_USER_ROLES)
    keystone.ensure_service(SERVICE_TYPE, SERVICE_NAME, api_url)
