"""Snapshot schedules: spec parsing, run times, catch-up and retention.

Pure and clock-free: every function takes the instants it needs, so the
conductor, the API and the tests all ask the same questions of the same
code. The grammar of every spec family, the DST rules and the retention
rules are documented in ``doc/source/schedules.rst``.

Usage::

    from snapmanager_nova import schedule

    spec = schedule.parse_spec("daily@02:30", timezone="Europe/Berlin")
    window = spec.window_of(now)        # window.start: idempotency key
    due = spec.missed(last_run, now)    # one catch-up run, or None
    ids = schedule.plan_deletions(snapshots, policy, now, spec.timezone)
    late = schedule.lateness(spec, now, grace, newest_window)  # or None
"""

from snapmanager_nova.schedule.errors import RetentionError
from snapmanager_nova.schedule.errors import SpecError
from snapmanager_nova.schedule.freshness import Lateness
from snapmanager_nova.schedule.freshness import expected_window
from snapmanager_nova.schedule.freshness import lateness
from snapmanager_nova.schedule.retention import RetentionPolicy
from snapmanager_nova.schedule.retention import SnapshotInfo
from snapmanager_nova.schedule.retention import plan_deletions
from snapmanager_nova.schedule.spec import FAMILIES
from snapmanager_nova.schedule.spec import Spec
from snapmanager_nova.schedule.spec import Window
from snapmanager_nova.schedule.spec import parse_spec

__all__ = [
    "FAMILIES",
    "Lateness",
    "RetentionError",
    "RetentionPolicy",
    "SnapshotInfo",
    "Spec",
    "SpecError",
    "Window",
    "expected_window",
    "lateness",
    "parse_spec",
    "plan_deletions",
]
