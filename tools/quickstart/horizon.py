"""Horizon with Snapmanager's dashboard, on the mini-cloud's Keystone.

`Horizon.up()` writes a settings module for Horizon and starts Django's
own server on http://127.0.0.1:8790 from the project's venv (Horizon and
the plugin are installed there with the `dashboard` extra). It is a
trial server, not a deployment: one process, no TLS, static files served
by Django. It runs with DEBUG off, so a page that fails shows Horizon's
error page, not a traceback.

Nothing is written into the venv. A deployment copies the plugin's
enabled files into openstack_dashboard/local/enabled/ and its settings
snippet into local_settings.d/ (doc/source/dashboard.rst); here the
settings module applies the same files from the source tree, the way
Horizon's plugins' own test settings do, and Horizon's
`from local.local_settings import *` finds the `local` package written
beside it (on PYTHONPATH ahead of Horizon's own).

Supervision (PID records, process groups, waits that fail when the
process dies) is the mini-cloud's, as for Snapmanager's services.
"""

import pathlib
import secrets
import shutil
import sys
import time

from . import stack as stack_module
from ._tools import minicloud

config = minicloud.config
rest = minicloud.rest

TOP = stack_module.TOP
VENV = stack_module.VENV
HOST = config.HOST_IP
PORT = 8790
URL = "http://%s:%d" % (HOST, PORT)
NAME = "horizon"
SETTINGS_MODULE = "snapmanager_horizon_settings"
LOGIN_PATH = "/auth/login/"
# The demo user the set-up prints; every password is the mini-cloud's.
DEMO_USER = "demo"

_LOCAL_SETTINGS = """\
# Written by tools/quickstart (horizon.py); rewritten by every `up`.
DEBUG = False
SECRET_KEY = {secret_key!r}
ALLOWED_HOSTS = [{host!r}, "localhost"]
OPENSTACK_KEYSTONE_URL = {auth_url!r}
OPENSTACK_KEYSTONE_DEFAULT_ROLE = "member"
# The session (token and catalog) in a signed cookie: no database, and
# it survives a restart of this server.
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
CACHES = {{
    "default": {{
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
    }},
}}
# No offline compression: runserver --insecure serves the static files
# from the installed packages as they are.
COMPRESS_ENABLED = False
COMPRESS_OFFLINE = False
# The mini-cloud has no Neutron: its network stand-in lists empty
# collections, and has no routers or quotas to ask about.
OPENSTACK_NEUTRON_NETWORK = {{
    "enable_router": False,
    "enable_quotas": False,
    "enable_ipv6": False,
    "enable_distributed_router": False,
    "enable_ha_router": False,
    "enable_fip_topology_check": False,
}}
LOGGING = {{
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {{"console": {{"class": "logging.StreamHandler"}}}},
    "loggers": {{
        "django.request": {{"handlers": ["console"], "level": "ERROR"}},
        "horizon": {{"handlers": ["console"], "level": "WARNING"}},
        "openstack_dashboard": {{"handlers": ["console"], "level": "WARNING"}},
        "snapmanager_dashboard": {{
            "handlers": ["console"],
            "level": "WARNING",
        }},
    }},
}}
"""

_SETTINGS = """\
# Written by tools/quickstart (horizon.py): Horizon's settings (with the
# local_settings beside this file), then Snapmanager's plugin, applied
# as its files would be from openstack_dashboard/local/.
import os

from openstack_dashboard.settings import *  # noqa: F403
from openstack_dashboard.utils import settings as _settings_utils

import openstack_dashboard.enabled
import openstack_dashboard.local.enabled
import snapmanager_dashboard.local.enabled

INSTALLED_APPS = list(INSTALLED_APPS)  # noqa: F405
HORIZON_CONFIG.pop("dashboards", None)  # noqa: F405
HORIZON_CONFIG.pop("default_dashboard", None)  # noqa: F405
_settings_utils.update_dashboards(
    [
        openstack_dashboard.enabled,
        openstack_dashboard.local.enabled,
        snapmanager_dashboard.local.enabled,
    ],
    HORIZON_CONFIG,  # noqa: F405
    INSTALLED_APPS,
)
INSTALLED_APPS = list(dict.fromkeys(INSTALLED_APPS))

_snippet = os.path.join(
    os.path.dirname(snapmanager_dashboard.local.enabled.__file__),
    os.pardir,
    "local_settings.d",
    "_90_snapmanager.py",
)
with open(_snippet, encoding="utf-8") as _f:
    exec(_f.read())
# The policy overrides file, from the source tree: a deployment copies
# it into Horizon's conf/ (POLICY_FILES_PATH) instead.
POLICY_FILES["snapmanager"] = os.path.join(  # noqa: F405
    os.path.dirname(snapmanager_dashboard.__file__),
    "conf",
    "snapmanager_policy.yaml",
)
"""


def _code_stamp():
    """The newest change to the plugin or to how this tool runs it."""
    paths = list((TOP / "snapmanager_dashboard").rglob("*"))
    paths += [
        TOP / "snapmanager_nova" / "apiclient.py",
        pathlib.Path(__file__),
        VENV / ".snapmanager-requirements",
    ]
    return max((p.stat().st_mtime for p in paths if p.exists()), default=0)


class Horizon(minicloud.cloud.MiniCloud):
    """Horizon on one mini-cloud; its files in the cloud's `horizon/`."""

    def __init__(self, cloud_dir=None, out=sys.stderr):
        cloud_dir = pathlib.Path(cloud_dir or minicloud.default_dir())
        super().__init__(cloud_dir / NAME, out)

    def _say(self, message):
        elapsed = time.monotonic() - self._t0
        print("horizon [%5.1fs] %s" % (elapsed, message), file=self.out)
        self.out.flush()

    @property
    def _settings_dir(self):
        return self.layout.root / "settings"

    def _argv(self, state, name):
        argv = [
            VENV / "bin" / "python",
            "-m",
            "django",
            "runserver",
            "%s:%d" % (HOST, PORT),
            "--settings=%s" % SETTINGS_MODULE,
            "--noreload",
            # Static files from the installed packages, with DEBUG off.
            "--insecure",
        ]
        return argv, {"PYTHONPATH": self._settings_dir}

    def _write_settings(self):
        local = self._settings_dir / "local"
        local.mkdir(parents=True, exist_ok=True)
        (local / "__init__.py").write_text("")
        key_file = self.layout.root / "secret_key"
        if not key_file.exists():
            stack_module._write_private(key_file, secrets.token_hex(32))
        stack_module._write_private(
            local / "local_settings.py",
            _LOCAL_SETTINGS.format(
                secret_key=key_file.read_text().strip(),
                host=HOST,
                auth_url=config.AUTH_URL,
            ),
        )
        (self._settings_dir / ("%s.py" % SETTINGS_MODULE)).write_text(
            _SETTINGS
        )

    def up(self, cloud):
        """Start Horizon if it does not run with this code; its info."""
        self._t0 = time.monotonic()
        state = self._load_state()
        state.setdefault("processes", {})
        fingerprint = {"code": _code_stamp(), "projects": cloud["projects"]}
        if NAME in self._running(state):
            if state.get("fingerprint") == fingerprint:
                self._say("already up on %s" % URL)
                return self.info()
            self._say("restarting: the plugin or the cloud changed")
            self._stop(state, [NAME])
        self._write_settings()
        state["fingerprint"] = fingerprint
        self._spawn(state, NAME)
        self._save_state(state)
        try:
            self._wait(
                "Horizon's login page on %s" % URL,
                lambda: (
                    rest.request("GET", URL + LOGIN_PATH, timeout=10)[0] == 200
                ),
                state,
                [NAME],
            )
        except BaseException:
            self._stop(state, [NAME])
            raise
        self._say("up on %s" % URL)
        return self.info()

    def info(self):
        return {
            "url": URL,
            "login_url": URL + LOGIN_PATH,
            "user": DEMO_USER,
            "password": config.PASSWORD,
            "log": str(self.log_path(NAME)),
        }

    def down(self, purge=False):
        self._stop_services([NAME])
        if purge:
            shutil.rmtree(self.layout.root, ignore_errors=True)

    def status(self):
        state = self._load_state()
        return {
            "url": URL,
            "processes": self._processes_status(state, [NAME]),
        }
