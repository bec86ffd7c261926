"""The check-out form and the form recording an external credential's new password."""

from typing import Any

from django import forms

from pam import services
from pam.models import MAX_REASON_LENGTH


class CheckOutForm(forms.Form):
    reason = forms.CharField(
        max_length=MAX_REASON_LENGTH,
        help_text="Why you need this credential; kept with the session.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The limit is a setting, read when the form is made rather than at import.
        limit = services.max_session_minutes()
        self.fields["minutes"] = forms.IntegerField(
            required=False,
            min_value=1,
            max_value=limit,
            help_text=f"At most {limit}; leave empty for the maximum.",
            widget=forms.NumberInput(attrs={"placeholder": str(limit)}),
        )


class ManualRotationForm(forms.Form):
    password = forms.CharField(
        max_length=4096,
        strip=False,
        label="New password",
        widget=forms.PasswordInput(render_value=False),
        help_text="The password you set on the external system; stored in the vault only.",
    )
