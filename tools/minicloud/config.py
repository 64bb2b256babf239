"""Configuration files of the mini-cloud's services.

Each function returns the sections of one file as nested dicts; `write_ini`
turns them into the file. Everything points at 127.0.0.1 and at the paths
of one private directory (see `Layout`), so two checkouts on one machine
only clash on the TCP ports.
"""

import configparser
import dataclasses
import pathlib
import urllib.parse

# Every user (people and services) has this password. The cloud listens on
# 127.0.0.1 only and exists for tests and demos: a secret would only make
# the quickstart harder to follow.
PASSWORD = "minicloud"
REGION = "RegionOne"
HOST_IP = "127.0.0.1"

PORTS = {
    "keystone": 5000,
    "placement": 8778,
    "glance": 9292,
    "nova-api": 8774,
    "network": 9696,
}

# Keystone users that `up` creates. The admin user and project come from
# `keystone-manage bootstrap`; `demo` and `other` are two tenants that must
# not see each other's servers; `demo-reader` may only read demo's.
PEOPLE = {
    "admin": {"project": "admin", "role": "admin"},
    "demo": {"project": "demo", "role": "member"},
    "demo-reader": {"project": "demo", "role": "reader"},
    "other": {"project": "other", "role": "member"},
}
# Service users, in the `service` project.
SERVICE_USERS = ("nova", "placement", "glance")

IMAGE_NAME = "minicloud-tiny"
FLAVOR_NAME = "minicloud.tiny"
FLAVOR = {"ram": 128, "vcpus": 1, "disk": 1}


def url(service, path=""):
    return "http://%s:%d%s" % (HOST_IP, PORTS[service], path)


AUTH_URL = url("keystone", "/v3")

# (type, name, URL) of every catalog entry; identity is made by bootstrap.
CATALOG = (
    ("compute", "nova", url("nova-api", "/v2.1")),
    ("placement", "placement", url("placement")),
    ("image", "glance", url("glance")),
    ("network", "neutron", url("network")),
)


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where everything of one mini-cloud lives."""

    root: pathlib.Path

    @property
    def venv(self):
        return self.root / "venv"

    @property
    def etc(self):
        return self.root / "etc"

    @property
    def log(self):
        return self.root / "log"

    @property
    def run(self):
        return self.root / "run"

    @property
    def data(self):
        return self.root / "data"

    @property
    def instances_path(self):
        return self.data / "nova" / "instances"

    @property
    def clouds_yaml(self):
        return self.root / "clouds.yaml"

    @property
    def info_file(self):
        return self.root / "minicloud.json"

    @property
    def state_file(self):
        return self.root / "state.json"

    def bin(self, name):
        return self.venv / "bin" / name

    def conf(self, service, name):
        return self.etc / service / name


def db_url(server_url, name):
    """The URL of database `name` on the test environment's server.

    The server URL may carry a query (a Unix socket for a system MariaDB):
    keep it and add the character set.
    """
    parts = urllib.parse.urlsplit(server_url)
    query = urllib.parse.parse_qsl(parts.query)
    query.append(("charset", "utf8"))
    return urllib.parse.urlunsplit(
        parts._replace(
            path="/" + name, query=urllib.parse.urlencode(query, safe="/")
        )
    )


def write_ini(path, sections):
    parser = configparser.ConfigParser(interpolation=None)
    # Keep option names as written: oslo.config is case sensitive.
    parser.optionxform = str
    for section, options in sections.items():
        if section != "DEFAULT":
            parser.add_section(section)
        for key, value in options.items():
            parser.set(section, key, _ini_value(value))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as out:
        parser.write(out)


def _ini_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _service_auth(username):
    """keystoneauth password options for a service user."""
    return {
        "auth_type": "password",
        "auth_url": AUTH_URL,
        "project_domain_name": "Default",
        "user_domain_name": "Default",
        "project_name": "service",
        "username": username,
        "password": PASSWORD,
        "region_name": REGION,
    }


def _authtoken(username):
    options = _service_auth(username)
    del options["region_name"]
    options["www_authenticate_uri"] = AUTH_URL
    # Without memcached, keystonemiddleware caches validated tokens in
    # process, which is all a single-worker test service needs.
    return options


def _common(layout, service, debug):
    return {
        "debug": debug,
        "state_path": layout.data / service,
    }


def keystone_conf(layout, server_url, debug=False):
    keys = layout.etc / "keystone"
    return {
        "DEFAULT": {"debug": debug},
        "database": {"connection": db_url(server_url, "minicloud_keystone")},
        "token": {"provider": "fernet"},
        "fernet_tokens": {"key_repository": keys / "fernet-keys"},
        "fernet_receipts": {"key_repository": keys / "fernet-keys"},
        "credential": {"key_repository": keys / "credential-keys"},
        # bcrypt's minimum: every token request hashes a password, and the
        # tests ask for many tokens.
        "identity": {"password_hash_rounds": 4},
        "oslo_messaging_notifications": {"driver": "noop"},
    }


def placement_conf(layout, server_url, debug=False):
    return {
        "DEFAULT": {"debug": debug},
        "placement_database": {
            "connection": db_url(server_url, "minicloud_placement")
        },
        "api": {"auth_strategy": "keystone"},
        "keystone_authtoken": _authtoken("placement"),
    }


def glance_conf(layout, server_url, debug=False):
    images = layout.data / "glance"
    return {
        "DEFAULT": {
            "debug": debug,
            "enabled_backends": "fs:file",
            # Glance checks this at start when it runs under a WSGI server.
            "worker_self_reference_url": url("glance"),
        },
        "database": {"connection": db_url(server_url, "minicloud_glance")},
        "keystone_authtoken": _authtoken("glance"),
        "paste_deploy": {"flavor": "keystone"},
        "glance_store": {"default_backend": "fs"},
        "fs": {"filesystem_store_datadir": "%s/" % (images / "images")},
        "os_glance_staging_store": {
            "filesystem_store_datadir": "%s/" % (images / "staging")
        },
        "os_glance_tasks_store": {
            "filesystem_store_datadir": "%s/" % (images / "tasks")
        },
        "oslo_concurrency": {"lock_path": images / "lock"},
        "oslo_messaging_notifications": {"driver": "noop"},
    }


def nova_db_conf(server_url):
    """The databases, in a file that nova-compute does not load.

    As on a real compute host, nova-compute holds no database credentials
    and reaches the database only through nova-conductor, so a test cannot
    pass because of a shortcut production does not have. The API,
    conductor, scheduler and nova-manage read this file after nova.conf.
    """
    return {
        "api_database": {
            "connection": db_url(server_url, "minicloud_nova_api")
        },
        "database": {"connection": db_url(server_url, "minicloud_nova")},
    }


def nova_conf(
    layout,
    *,
    host,
    transport_url,
    libvirt_uri,
    virt_type="qemu",
    rbd=None,
    debug=False,
):
    """nova.conf for every Nova process.

    `rbd` is None for file-backed qcow2 disks, else a dict with the Ceph
    `conf`, `pool`, `user` and the libvirt `secret_uuid` holding its key.
    """
    state = layout.data / "nova"
    privsep = "%s --config-file %s" % (
        layout.bin("privsep-helper"),
        layout.conf("nova", "nova.conf"),
    )
    libvirt = {
        "connection_uri": libvirt_uri,
        "virt_type": virt_type,
        # Nested KVM rejects host-model CPUs, and TCG needs no model: the
        # guests only sit in their firmware.
        "cpu_mode": "none",
    }
    if rbd is None:
        libvirt["images_type"] = "qcow2"
    else:
        libvirt.update(
            {
                "images_type": "rbd",
                "images_rbd_pool": rbd["pool"],
                "images_rbd_ceph_conf": rbd["conf"],
                "rbd_user": rbd["user"],
                "rbd_secret_uuid": rbd["secret_uuid"],
            }
        )
    return {
        "DEFAULT": {
            "debug": debug,
            # A fixed service host: Snapmanager's agent and its tests find
            # the compute by this name.
            "host": host,
            "my_ip": HOST_IP,
            "state_path": state,
            "instances_path": layout.instances_path,
            "transport_url": transport_url,
            "compute_driver": "libvirt.LibvirtDriver",
            # The guests have no OS to answer ACPI: without this every stop
            # waits a minute for a clean shutdown that cannot happen.
            "shutdown_timeout": 0,
            # No ports to heal: the network endpoint is a stand-in.
            "heal_instance_info_cache_interval": -1,
            "allow_resize_to_same_host": True,
            # The guests sit in their firmware and use next to no CPU:
            # room for the servers of several test runs at once (and of
            # a resize, which holds both flavors) on a 2-core machine,
            # where Nova's default ratio of 4 allows 8 vCPUs.
            "cpu_allocation_ratio": 16.0,
            # Tests stop the services often; nothing must outlive them.
            "graceful_shutdown_timeout": 5,
            "manager_shutdown_timeout": 0,
        },
        "wsgi": {"api_paste_config": layout.conf("nova", "api-paste.ini")},
        "api": {"auth_strategy": "keystone"},
        "conductor": {"workers": 1},
        "scheduler": {
            "workers": 1,
            # `up` maps the one compute host itself, once.
            "discover_hosts_in_cells_interval": -1,
        },
        "libvirt": libvirt,
        "vnc": {"enabled": False},
        "notifications": {"notification_format": "versioned"},
        "oslo_messaging_notifications": {"driver": "messagingv2"},
        "oslo_concurrency": {"lock_path": state / "lock"},
        "keystone_authtoken": _authtoken("nova"),
        "service_user": dict(
            _service_auth("nova"), send_service_user_token=True
        ),
        "placement": _service_auth("nova"),
        "neutron": _service_auth("nova"),
        # Already root: run oslo.privsep's helper from the venv directly
        # instead of through sudo and nova-rootwrap.
        "nova_sys_admin": {"helper_command": privsep},
        "privsep_osbrick": {"helper_command": privsep},
        "vif_plug_linux_bridge_privileged": {"helper_command": privsep},
        "vif_plug_ovs_privileged": {"helper_command": privsep},
    }
