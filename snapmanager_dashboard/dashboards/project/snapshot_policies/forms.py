import zoneinfo

from django.core import validators
from django.utils.translation import gettext_lazy as _
from horizon import forms
from horizon import messages
from horizon.utils import functions as horizon_functions

from snapmanager_dashboard.api import snapmanager
from snapmanager_dashboard.dashboards.project.snapshot_policies import (
    schedules,
)

_HHMM = validators.RegexValidator(
    r"^([01][0-9]|2[0-3]):[0-5][0-9]$", _("Give the time as HH:MM (24 h).")
)
_FAMILY_CHOICES = (
    ("daily", _("Every day")),
    ("weekly", _("Every week")),
    ("monthly", _("Every month")),
    ("every", _("Every N hours")),
    ("spec", _("A spec (NetApp style or cron)")),
)
_WEEKDAY_CHOICES = tuple(
    zip(
        schedules.WEEKDAYS,
        (
            _("Monday"),
            _("Tuesday"),
            _("Wednesday"),
            _("Thursday"),
            _("Friday"),
            _("Saturday"),
            _("Sunday"),
        ),
        strict=True,
    )
)


def _switched(**labels):
    """Attributes of a field shown only for some frequencies (Horizon's
    switchable fields), labelled per frequency."""
    attrs = {"class": "switched", "data-switch-on": "family"}
    for family, label in labels.items():
        attrs[f"data-family-{family}"] = label
    return attrs


def _timezone_choices():
    return [(name, name) for name in sorted(zoneinfo.available_timezones())]


def api_error(request, message):
    """Show ``message`` (which carries the API's own text) as an error.

    Not Horizon's ``exceptions.handle``: that re-raises what it does not
    know, and an API refusal is never worth a 500 page.
    """
    messages.error(request, message)


class ScheduleForm(forms.SelfHandlingForm):
    """One schedule: "every day at HH:MM, keep the last N", with the other
    frequencies as the advanced part."""

    family = forms.ChoiceField(
        label=_("Take a snapshot"),
        choices=_FAMILY_CHOICES,
        initial="daily",
        widget=forms.ThemableSelectWidget(
            attrs={"class": "switchable", "data-slug": "family"}
        ),
    )
    weekday = forms.ChoiceField(
        label=_("On"),
        choices=_WEEKDAY_CHOICES,
        required=False,
        widget=forms.ThemableSelectWidget(attrs=_switched(weekly=_("On"))),
    )
    day = forms.IntegerField(
        label=_("On day"),
        min_value=1,
        max_value=31,
        required=False,
        help_text=_("29-31 mean the month's last day in shorter months."),
        widget=forms.NumberInput(attrs=_switched(monthly=_("On day"))),
    )
    hours = forms.TypedChoiceField(
        label=_("Every"),
        coerce=int,
        choices=[(h, _("%d hours") % h) for h in schedules.EVERY_HOURS],
        required=False,
        widget=forms.ThemableSelectWidget(attrs=_switched(every=_("Every"))),
    )
    time = forms.CharField(
        label=_("At (HH:MM)"),
        initial=schedules.DEFAULT_TIME,
        required=False,
        validators=[_HHMM],
        widget=forms.TextInput(
            attrs=_switched(
                daily=_("At (HH:MM)"),
                weekly=_("At (HH:MM)"),
                monthly=_("At (HH:MM)"),
                every=_("Starting at (HH:MM)"),
            )
        ),
    )
    spec = forms.CharField(
        label=_("Spec"),
        required=False,
        help_text=_(
            "For example 6@mon-fri@7,19 (at 07:00 and 19:00 on weekdays, "
            "keep 6) or cron:30 1 * * *."
        ),
        widget=forms.TextInput(attrs=_switched(spec=_("Spec"))),
    )
    timezone = forms.ChoiceField(label=_("Timezone"), choices=())
    keep = forms.IntegerField(
        label=_("Keep the last"),
        min_value=1,
        initial=schedules.DEFAULT_KEEP,
        required=False,
        help_text=_(
            "How many snapshots to keep; older ones are deleted. Empty "
            "keeps them all (or what a NetApp style spec says)."
        ),
    )

    def __init__(self, request, *args, **kwargs):
        super().__init__(request, *args, **kwargs)
        self.fields["timezone"].choices = _timezone_choices()
        if not self.initial.get("timezone"):
            # The user's Horizon setting (Settings > User Settings).
            self.initial["timezone"] = horizon_functions.get_timezone(request)

    def clean(self):
        data = super().clean()
        family = data.get("family")
        needed = {
            "weekly": ("weekday", "time"),
            "monthly": ("day", "time"),
            "every": ("hours", "time"),
            "daily": ("time",),
            "spec": ("spec",),
        }.get(family, ())
        for name in needed:
            if data.get(name) in (None, ""):
                self.add_error(name, _("This field is required."))
        return data


class PolicyForm(ScheduleForm):
    server_id = forms.CharField(widget=forms.HiddenInput())
    snapshots_on = forms.BooleanField(
        label=_("Take scheduled snapshots of this server"),
        required=False,
        initial=True,
        help_text=_(
            "Unticked, snapshots are switched off: no schedule takes "
            "any more, and the snapshots already taken stay until you "
            "delete them."
        ),
    )
    keep_after_delete = forms.BooleanField(
        label=_("Keep snapshots when the server is deleted"),
        required=False,
    )

    field_order = ["server_id", "snapshots_on"]

    def clean(self):
        data = super().clean()
        if not data.get("snapshots_on"):
            # Switching off needs no schedule: whatever the schedule's
            # fields hold does not matter.
            for name in list(self._errors):
                if name not in ("server_id", "snapshots_on"):
                    del self._errors[name]
        return data

    def handle(self, request, data):
        server_id = data["server_id"]
        try:
            if not data["snapshots_on"]:
                snapmanager.policy_delete(request, server_id)
                messages.success(
                    request, _("Scheduled snapshots are switched off.")
                )
                return True
            policy = snapmanager.policy_set(
                request,
                server_id,
                [schedules.schedule_from_fields(data)],
                data["keep_after_delete"],
            )
        except snapmanager.APIError as exc:
            if not data["snapshots_on"] and exc.code == 404:
                messages.info(request, _("Snapshots were already off."))
                return True
            api_error(
                request, _("Unable to save the snapshot policy: %s") % exc
            )
            return False
        spec = policy.schedules[0]["spec"] if policy.schedules else ""
        if data["keep"]:
            saved = _("Snapshot policy saved: %(spec)s, keep the last %(n)d.")
        else:
            saved = _("Snapshot policy saved: %(spec)s, keep them all.")
        messages.success(request, saved % {"spec": spec, "n": data["keep"]})
        return True


class DefaultPolicyForm(ScheduleForm):
    def handle(self, request, data):
        try:
            snapmanager.default_policy_set(
                request, [schedules.schedule_from_fields(data)]
            )
        except snapmanager.APIError as exc:
            api_error(
                request,
                _("Unable to save the project's default policy: %s") % exc,
            )
            return False
        messages.success(request, _("The project's default policy is set."))
        return True


class TakeSnapshotForm(forms.SelfHandlingForm):
    server_id = forms.CharField(widget=forms.HiddenInput())
    quiesce = forms.ChoiceField(
        label=_("Freeze the guest's filesystems"),
        choices=(
            ("prefer", _("When the guest agent can (recommended)")),
            ("require", _("Always: fail when the guest agent cannot")),
            ("skip", _("Never")),
        ),
        initial="prefer",
        widget=forms.ThemableSelectWidget(),
    )

    def handle(self, request, data):
        try:
            snapshot, _operation = snapmanager.snapshot_create(
                request, data["server_id"], quiesce=data["quiesce"]
            )
        except snapmanager.APIError as exc:
            api_error(request, _("Unable to take a snapshot: %s") % exc)
            return False
        messages.success(
            request,
            _("Taking a snapshot; it shows as available when it is done."),
        )
        return snapshot


class RestoreForm(forms.SelfHandlingForm):
    snapshot_id = forms.CharField(widget=forms.HiddenInput())

    def handle(self, request, data):
        try:
            operation = snapmanager.snapshot_restore(
                request, data["snapshot_id"]
            )
        except snapmanager.APIError as exc:
            api_error(request, _("Unable to restore: %s") % exc)
            return False
        return operation
