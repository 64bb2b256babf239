"""Schedule specs: parsing, and the run times they name.

A :class:`Spec` is immutable and does no I/O: every method takes the
instants it needs, so the conductor's clock, the API's validation and the
tests all ask the same questions of the same code.
"""

import dataclasses
import datetime
import itertools
import re
import typing
import zoneinfo

from snapmanager_nova.schedule import cron
from snapmanager_nova.schedule import errors
from snapmanager_nova.schedule import families
from snapmanager_nova.schedule import pattern as pattern_mod
from snapmanager_nova.schedule import zones

FAMILIES = ("daily", "weekly", "monthly", "every", "netapp", "cron")

_FORMS = {
    "daily": "daily@HH:MM",
    "weekly": "weekly@DAY@HH:MM",
    "monthly": "monthly@D@HH:MM",
    "every": "every@Nh[@HH:MM]",
    "netapp": "COUNT[@DAYS][@HOURS]",
    "cron": "cron:MIN HOUR DOM MON DOW",
}

# family: (parser, fewest fields, most fields), the family's own name not
# counted (NetApp specs have none: their first field is the count).
_PARSERS = {
    "daily": (families.parse_daily, 1, 1),
    "weekly": (families.parse_weekly, 2, 2),
    "monthly": (families.parse_monthly, 2, 2),
    "every": (families.parse_every, 1, 2),
    "netapp": (families.parse_netapp, 1, 3),
}

# What a NetApp style spec starts with: its count, perhaps signed (a
# negative one is then refused as a count, naming the field).
_NETAPP_COUNT = re.compile(r"[+-]?[0-9]")

_CRON_PREFIX = "cron:"


class Window(typing.NamedTuple):
    """The run interval around an instant.

    ``start`` is the latest run at or before the instant and ``end`` the
    first run after it. A scheduled snapshot records ``start`` as its
    window: however many conductors race for a window, or however late
    one of them runs, they all compute the same key.
    """

    start: datetime.datetime | None
    end: datetime.datetime | None


@dataclasses.dataclass(frozen=True)
class Spec:
    """A parsed schedule spec in a timezone.

    Build one with :func:`parse_spec`. Two specs are equal when their
    canonical text and timezone are.

    :ivar family: ``daily``, ``weekly``, ``monthly``, ``every``,
        ``netapp`` or ``cron``.
    :ivar text: the canonical spec text; parsing it gives an equal spec.
    :ivar timezone: the IANA timezone name the wall times are read in.
    :ivar keep: a NetApp spec's count, how many snapshots to keep; None
        for the other families, whose retention is a separate policy.
    :ivar tz: ``timezone`` as a :class:`zoneinfo.ZoneInfo`.
    """

    family: str
    text: str
    timezone: str
    keep: int | None
    tz: zoneinfo.ZoneInfo = dataclasses.field(repr=False, compare=False)
    # None when the spec never fires (a NetApp count of 0).
    pattern: pattern_mod.WallPattern | None = dataclasses.field(
        repr=False, compare=False
    )

    def next_run(self, after):
        """Return the first run strictly after ``after`` (aware), in UTC.

        None only if the spec never fires.
        """
        return next(self._runs_after(after), None)

    def runs(self, after, count):
        """Return an iterator over the next ``count`` runs after ``after``.

        The runs are strictly increasing, in UTC; fewer than ``count``
        only if the spec never fires.
        """
        return itertools.islice(self._runs_after(after), max(count, 0))

    def previous_run(self, at):
        """Return the latest run at or before ``at`` (aware), in UTC."""
        zones.require_aware(at, "at")
        if self.pattern is None:
            return None
        try:
            local = at.astimezone(self.tz)
            end = local.replace(tzinfo=None, fold=0)
            if local.fold:
                # ``at`` is in the second pass of a fall-back overlap: the
                # wall times up to an overlap's length later had their
                # (only) run in the first pass, before ``at``.
                end += local.replace(fold=0).utcoffset() - local.utcoffset()
            for wall in self.pattern.walls_until(end):
                run = zones.wall_to_utc(wall, self.tz)
                # Wall times map to instants in order, so walking them
                # backwards the first run not after ``at`` is the latest.
                if run <= at:
                    return run
        except OverflowError:
            # At the start of datetime's calendar: no run to be found.
            pass
        return None

    def window_of(self, t):
        """Return the :class:`Window` that ``t`` falls in.

        ``start <= t < end``; both are None for a spec that never fires.
        """
        return Window(self.previous_run(t), self.next_run(t))

    def missed(self, since, now):
        """Return the one run to catch up on, or None.

        That is the latest run ``r`` with ``since < r <= now``: a conductor
        that was down for a week takes one snapshot when it comes back,
        not one per missed window.
        """
        zones.require_aware(since, "since")
        latest = self.previous_run(now)
        if latest is not None and latest > since:
            return latest
        return None

    def _runs_after(self, after):
        # Checked here, not in the generator, so that a naive datetime
        # fails at the call rather than at the first next().
        zones.require_aware(after, "after")
        if self.pattern is None:
            return iter(())
        return self._generate_runs(after)

    def _generate_runs(self, after):
        last = None
        try:
            # An earlier wall time never maps to a later instant, so no
            # wall time before ``after``'s own can run after it.
            start = after.astimezone(self.tz).replace(tzinfo=None, fold=0)
            for wall in self.pattern.walls_from(start):
                run = zones.wall_to_utc(wall, self.tz)
                # Equal instants come in a row (a gap run and the run at
                # the end of the gap): they are one run.
                if run > after and run != last:
                    yield run
                    last = run
        except OverflowError:
            # At the end of datetime's calendar: no more runs to be found.
            return


def parse_spec(text, timezone="UTC"):
    """Parse a schedule spec; the grammar is in doc/source/schedules.rst.

    :param text: the spec as a tenant wrote it; case and the whitespace
        around tokens do not matter.
    :param timezone: the IANA timezone whose wall clock the spec follows.
    :raises SpecError: naming the bad field and token.
    """
    if not isinstance(text, str):
        raise errors.SpecError("spec", f"{text!r} is not a string")
    normal = text.strip().lower()
    if not normal:
        raise errors.SpecError("spec", "must not be empty")
    if normal.startswith(_CRON_PREFIX):
        family = "cron"
        fields_text = " ".join(normal[len(_CRON_PREFIX) :].split())
        compiled = cron.parse(fields_text)
        canonical, keep = _CRON_PREFIX + fields_text, None
    else:
        family, canonical, compiled, keep = _parse_at_spec(normal)
    tz = zones.load_timezone(timezone)
    return Spec(
        family=family,
        text=canonical,
        timezone=tz.key,
        keep=keep,
        tz=tz,
        pattern=compiled,
    )


def _parse_at_spec(normal):
    fields = [field.strip() for field in normal.split("@")]
    head = fields[0]
    if head in _PARSERS:
        family, fields = head, fields[1:]
    elif _NETAPP_COUNT.match(head):
        family = "netapp"
    else:
        known = ", ".join(_FORMS.values())
        raise errors.SpecError(
            "spec", f"{normal!r} is not a known schedule ({known})"
        )
    parser, fewest, most = _PARSERS[family]
    if not fewest <= len(fields) <= most:
        raise errors.SpecError("spec", f"{normal!r} is not {_FORMS[family]}")
    canonical, compiled, keep = parser(fields)
    return family, canonical, compiled, keep
