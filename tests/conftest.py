pytest_plugins = ["tests.fixtures.testenv"]
