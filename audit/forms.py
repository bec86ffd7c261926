"""The audit settings form of a platform: which reports are read, and how often."""

from django import forms

from connectors.google_reports import APPLICATIONS


class AuditSettingsForm(forms.Form):
    enabled = forms.BooleanField(
        required=False, help_text="Read this platform's reports on the schedule"
    )
    applications = forms.MultipleChoiceField(
        choices=[(app, app) for app in APPLICATIONS],
        widget=forms.CheckboxSelectMultiple,
        help_text="The Reports API applications whose activities are copied here",
    )
    interval_minutes = forms.IntegerField(
        label="Every (minutes)",
        min_value=1,
        max_value=24 * 60,
        help_text="How long after one run the beat sends the next",
    )
    overlap_minutes = forms.IntegerField(
        label="Overlap (minutes)",
        required=False,  # left out: unchanged
        min_value=0,
        max_value=24 * 60,
        help_text="Each run re-reads this much before where the last one stopped, for "
        "activities Google publishes late; the daily late-arrival check below says if it "
        "is enough",
    )
