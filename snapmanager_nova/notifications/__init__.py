"""Snapmanager's own versioned notifications, in Nova's form.

:mod:`.payloads` builds the payloads (pure: no I/O, no Nova);
:mod:`.notifier` sends them with oslo.messaging. The API and the
conductor both send through :mod:`.notifier`; nothing here imports
either of them. doc/source/notifications.rst lists the events.
"""
