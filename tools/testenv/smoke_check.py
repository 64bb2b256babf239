"""Smoke check of an installed Snapmanager: run by every install path.

A resolution that installs but cannot import (pyOpenSSL 22 beside
cryptography 51, for one) otherwise shows up later as a service that dies
in its log. This loads every entry point the distribution declares,
imports the bindings that are not on PyPI and the libraries that import
their dependencies only when first used, loads the dashboard's enabled
files under Horizon's settings (when Horizon is installed), and runs each
console script's ``--help``. Any failure ends it with the error and a
non-zero exit.

    python tools/testenv/smoke_check.py [--no-dashboard]
"""

import argparse
import importlib
import importlib.metadata
import os
import pathlib
import subprocess
import sys
import warnings

DIST = "snapmanager"
# Not declared as entry points, yet imported by the services: Ceph's
# bindings come from Debian, and eventlet (through oslo.messaging and
# oslo.service) imports pyOpenSSL only when loaded.
MODULES = ("rados", "rbd", "libvirt", "oslo_messaging", "eventlet")
HELP_TIMEOUT = 60


def fail(what, error):
    print("smoke-check: %s: %s" % (what, describe(error)), file=sys.stderr)
    sys.exit(1)


def describe(error):
    """The error and what caused it: a wrapped ImportError hides the cause."""
    if not isinstance(error, BaseException):
        return error
    seen = []
    while error is not None and error not in seen:
        seen.append(error)
        error = error.__cause__ or error.__context__
    return " <- ".join(repr(e) for e in seen)


def check_entry_points(dist):
    count = 0
    for ep in dist.entry_points:
        try:
            ep.load()
        except Exception as exc:  # noqa: BLE001 - reported, then exit 1
            fail("entry point %s = %s" % (ep.name, ep.value), exc)
        count += 1
    return count


def check_modules():
    for name in MODULES:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001
            fail("import %s" % name, exc)


def check_dashboard():
    """Load our enabled files the way Horizon's settings load them."""
    try:
        import snapmanager_dashboard
    except ImportError as exc:
        fail("import snapmanager_dashboard", exc)
    enabled = (
        pathlib.Path(snapmanager_dashboard.__file__).parent
        / "local"
        / "enabled"
    )
    files = sorted(enabled.glob("_[0-9]*.py"))
    if not files:
        return 0
    try:
        importlib.import_module("openstack_dashboard")
    except ImportError:
        # Horizon is the `dashboard` extra: a host without it has nothing
        # of the dashboard to check.
        return 0
    os.environ.setdefault(
        "DJANGO_SETTINGS_MODULE", "openstack_dashboard.test.settings"
    )
    import django

    try:
        django.setup()
    except Exception as exc:  # noqa: BLE001
        fail("Horizon's settings", exc)
    for path in files:
        module = "snapmanager_dashboard.local.enabled.%s" % path.stem
        try:
            settings = importlib.import_module(module)
            for key in ("ADD_INSTALLED_APPS", "ADD_PANEL", "EXTRA_TABS"):
                for name in _dotted_names(getattr(settings, key, ())):
                    _import_dotted(name)
        except Exception as exc:  # noqa: BLE001
            fail("enabled file %s" % module, exc)
    return len(files)


def _dotted_names(value):
    """The dotted paths an enabled-file setting names: a string, a list of
    them, or EXTRA_TABS' {tab group: [path or (priority, path)]}."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = [name for names in value.values() for name in names]
    return [
        name[-1] if isinstance(name, (tuple, list)) else name for name in value
    ]


def _import_dotted(name):
    try:
        importlib.import_module(name)
    except ImportError:
        module, _, attr = name.rpartition(".")
        getattr(importlib.import_module(module), attr)


def check_console_scripts(dist):
    bindir = pathlib.Path(sys.executable).parent
    scripts = [
        ep.name for ep in dist.entry_points if ep.group == "console_scripts"
    ]
    for name in scripts:
        try:
            result = subprocess.run(
                [bindir / name, "--help"],
                capture_output=True,
                text=True,
                timeout=HELP_TIMEOUT,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            fail("%s --help" % name, exc)
        if result.returncode:
            fail(
                "%s --help (exit %d)" % (name, result.returncode),
                (result.stderr or result.stdout).strip()[-2000:],
            )
    return len(scripts)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-dashboard", action="store_true")
    args = parser.parse_args()
    # Deprecation notices (eventlet's, for one) say nothing about whether
    # the installation works.
    warnings.simplefilter("ignore")
    try:
        dist = importlib.metadata.distribution(DIST)
    except importlib.metadata.PackageNotFoundError as exc:
        fail("distribution", exc)
    # Modules first: a broken dependency shows its own error there, where
    # an entry point's import may wrap it.
    check_modules()
    points = check_entry_points(dist)
    panels = 0 if args.no_dashboard else check_dashboard()
    scripts = check_console_scripts(dist)
    print(
        "smoke-check: %d entry points, %d modules, %d enabled files, "
        "%d console scripts --help: ok"
        % (points, len(MODULES), panels, scripts)
    )


if __name__ == "__main__":
    main()
