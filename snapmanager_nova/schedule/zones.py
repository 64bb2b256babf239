"""Timezones, and the one rule that turns a wall-clock time into an instant.

Every schedule family fires on local wall-clock times. Most wall times
name exactly one instant; daylight saving time makes two exceptions, and
this module is the only place that decides them:

* a wall time inside a spring-forward gap does not exist: it fires at the
  first instant after the gap (02:30 on a day that jumps from 02:00 to
  03:00 fires at 03:00);
* a wall time inside a fall-back overlap exists twice: it fires at its
  first occurrence only (``fold=0``).

With these rules the wall-to-instant mapping never goes backwards, which
the scans in :mod:`.spec` rely on: walking wall times in order walks
instants in order, and two wall times that land on the same instant (a
gap run and the run right after the gap) are one run.
"""

import datetime
import zoneinfo

from snapmanager_nova.schedule import errors

UTC = datetime.UTC

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)

# Files a host's tz database may hold that are not IANA zones: the host's
# own zone, which differs from one conductor to the next, and copies of
# the zones kept for other tools ("right/" ones count leap seconds).
_HOST_FILES = ("localtime", "posixrules")
_HOST_DIRECTORIES = ("posix/", "right/")


def load_timezone(name):
    """Return the :class:`zoneinfo.ZoneInfo` of an IANA timezone name.

    zoneinfo looks in the system's tz database first and falls back to the
    ``tzdata`` package, which Snapmanager depends on so that a host or a
    container without ``/usr/share/zoneinfo`` still knows every zone.

    :raises SpecError: on field ``timezone`` for anything else.
    """
    if isinstance(name, str):
        name = name.strip()
    if (
        not isinstance(name, str)
        or not name
        or name in _HOST_FILES
        or name.startswith(_HOST_DIRECTORIES)
    ):
        raise _not_a_timezone(name)
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        # ValueError: a key that is not a relative path (zoneinfo refuses
        # "../x" and absolute paths); OSError: a directory such as
        # "Europe" or an unreadable file.
        raise _not_a_timezone(name) from None


def _not_a_timezone(name):
    return errors.SpecError("timezone", f"{name!r} is not an IANA timezone")


def require_aware(value, name):
    """Refuse naive datetimes: a naive time has no single instant."""
    if not isinstance(value, datetime.datetime):
        raise TypeError(
            f"{name} must be a datetime.datetime, not {type(value).__name__}"
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise TypeError(f"{name} must be timezone-aware, got {value!r}")


def wall_to_utc(wall, tz):
    """Return the instant (aware, UTC) at which naive ``wall`` in ``tz`` runs.

    See the module docstring for the gap and overlap rules.
    """
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if _wall_of(first, tz) == wall:
        # The wall time exists; fold=0 is its first occurrence when it
        # exists twice.
        return first
    return _end_of_gap(wall, tz)


def _wall_of(instant, tz):
    return instant.astimezone(tz).replace(tzinfo=None, fold=0)


def _end_of_gap(wall, tz):
    """Return the first instant after the gap that swallows ``wall``.

    Within a gap, fold=0 reads ``wall`` with the offset before the jump and
    fold=1 with the offset after it; the jump lies between the two
    instants. Bisect to the second (tz database transitions are on whole
    seconds) for the first instant whose wall time is past ``wall``:
    zones jump by 20, 30, 40 or 60 minutes, and once by a whole day, so
    no fixed offset arithmetic would do.
    """
    before = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    after = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    low = int((before - _EPOCH).total_seconds())
    high = int((after - _EPOCH).total_seconds())
    while high - low > 1:
        middle = (low + high) // 2
        if _wall_of(_EPOCH + datetime.timedelta(seconds=middle), tz) > wall:
            high = middle
        else:
            low = middle
    return _EPOCH + datetime.timedelta(seconds=high)
