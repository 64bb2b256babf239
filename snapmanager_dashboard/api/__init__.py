from snapmanager_dashboard.api import snapmanager  # noqa: F401
