"""Snapmanager's own database: models, query API (api) and migrations."""
