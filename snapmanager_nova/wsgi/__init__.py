"""Modules that WSGI servers load (``snapmanager_nova.wsgi.api``)."""
