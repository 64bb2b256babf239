"""Django for the dashboard's tests, without pytest-django.

The settings are Horizon's test settings with the plugin enabled
(settings.py). Horizon's test helpers are Django TestCases: Django's
test environment (the test database Horizon's session machinery
expects, the locmem mail outbox, template instrumentation) is set up
once for the session, as Django's own test runner would.
"""

import os

import django
import pytest
from openstack_dashboard.test.test_data import exceptions as test_exceptions

os.environ.setdefault(
    "DJANGO_SETTINGS_MODULE", "tests.unit.dashboard.settings"
)
django.setup()


@pytest.fixture(scope="session", autouse=True)
def _django_test_environment():
    from django.test import runner
    from django.test import utils

    test_runner = runner.DiscoverRunner(verbosity=0, interactive=False)
    utils.setup_test_environment()
    old_config = test_runner.setup_databases()
    yield
    test_runner.teardown_databases(old_config)
    utils.teardown_test_environment()


# What Horizon's create_stubbed_exception sets on an exception class.
_STUBBED = ("__init__", "__str__", "silence_logging")


@pytest.fixture(autouse=True)
def _undo_horizons_exception_stubs(monkeypatch):
    """Give the exception classes Horizon's test data stubs back their own
    ``__init__`` and ``__str__`` after each test.

    Every Horizon TestCase's setUp loads Horizon's test data, which
    replaces them for good on client exception classes, keystoneauth's
    ``ClientException`` among them: the base of every ``HttpError``, whose
    ``http_status`` then becomes its message. The shared client
    (snapmanager_nova.apiclient) turns those errors into its own, so the
    OSC plugin's tests, and the dashboard's own tests of the real client,
    would see a broken keystoneauth after any Horizon TestCase.
    """
    saved = []
    stub = test_exceptions.create_stubbed_exception

    def recorded_stub(cls, *args, **kwargs):
        own = vars(cls)
        saved.append(
            (cls, {name: own[name] for name in _STUBBED if name in own})
        )
        return stub(cls, *args, **kwargs)

    monkeypatch.setattr(
        test_exceptions, "create_stubbed_exception", recorded_stub
    )
    yield
    # Newest first: a class stubbed twice gets its first state back.
    for cls, own in reversed(saved):
        for name in _STUBBED:
            if name in own:
                setattr(cls, name, own[name])
            elif name in vars(cls):
                delattr(cls, name)
