import pytest

pytest_plugins = [
    "tests.fixtures.testenv",
    "tests.fixtures.services",
    "tests.fixtures.minicloud",
    "tests.fixtures.snapmanager_cloud",
    "tests.fixtures.notifications",
]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # Fixtures read item.rep_call to print service logs of failed tests.
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
