"""The policy form: kind, platform, action and mode, and the kind's parameters."""

from typing import Any

from django import forms

from policies.models import ACTIONS_FOR_KIND, Action, Policy, PolicyKind
from web.inputs import SingleLineCharField


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


class PolicyForm(forms.ModelForm):  # type: ignore[type-arg]
    days = forms.IntegerField(
        required=False,
        min_value=1,
        help_text="Stale credential: rotated within N days; inactive account: a login within N",
    )
    broad_scopes = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="OAuth app: scope prefixes counted as broad, one a line (empty: defaults)",
    )
    allowed_clients = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="OAuth app: allowed client ids, one a line",
    )

    allowed_group = SingleLineCharField(
        required=False,
        max_length=320,
        help_text="Admin outside a group: the group (email or name) admins must belong to",
    )
    privileged_group = SingleLineCharField(
        required=False,
        max_length=320,
        help_text="Admin outside a group: the group 'remove from a group' takes the user out of",
    )

    class Meta:
        model = Policy
        fields = ["name", "kind", "platform", "action", "mode", "enabled"]
        field_classes = {"name": SingleLineCharField}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        parameters = self.instance.parameters or {}
        self.fields["days"].initial = parameters.get("days")
        self.fields["broad_scopes"].initial = "\n".join(parameters.get("broad_scopes") or [])
        self.fields["allowed_clients"].initial = "\n".join(parameters.get("allowed_clients") or [])
        self.fields["allowed_group"].initial = parameters.get("allowed_group")
        self.fields["privileged_group"].initial = parameters.get("privileged_group")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind, action = data.get("kind"), data.get("action")
        if kind and action and action not in ACTIONS_FOR_KIND[kind]:
            self.add_error("action", f"This action does not fit the kind {kind}")
        parameters: dict[str, Any] = {}
        if kind in (PolicyKind.STALE_CREDENTIAL, PolicyKind.INACTIVE_ACCOUNT):
            parameters["days"] = data.get("days") or 90
        if kind == PolicyKind.BROAD_OAUTH_APP:
            parameters["broad_scopes"] = _lines(data.get("broad_scopes") or "")
            parameters["allowed_clients"] = _lines(data.get("allowed_clients") or "")
        if kind == PolicyKind.ADMIN_OUTSIDE_GROUP:
            if not (data.get("allowed_group") or "").strip():
                self.add_error("allowed_group", "Name the group admins must belong to")
            parameters["allowed_group"] = (data.get("allowed_group") or "").strip()
            parameters["privileged_group"] = (data.get("privileged_group") or "").strip()
            if action == Action.REMOVE_FROM_GROUP and not parameters["privileged_group"]:
                self.add_error("privileged_group", "Name the group to remove the user from")
        self.instance.parameters = parameters
        return data
