"""Forms for identity sources (one per kind), their rule, and "Sync now". The bind password is
entered once and never rendered back."""

from typing import Any

from django import forms
from django.contrib.auth import get_user_model

from connectors.ldap import normalize_ca_certificate
from directory.models import AD_MAPPING, IdentitySource, JmlRule
from identities.models import Platform
from web.destinations import require_secret_again
from web.inputs import SingleLineCharField

SCHEDULE_HELP = "Minutes between scheduled syncs (default 60); 0 syncs only on “Sync now”."

MAPPING_LABELS: dict[str, str] = {
    "user_filter": "User filter",
    "group_filter": "Group filter",
    "id": "Immutable id attribute (objectGUID, entryUUID)",
    "username": "Username attribute",
    "email": "Email attribute",
    "given_name": "Given name attribute",
    "family_name": "Family name attribute",
    "display_name": "Display name attribute",
    "department": "Department attribute",
    "title": "Title attribute",
    "manager": "Manager attribute (a DN)",
    "group_id": "Group id attribute",
    "group_name": "Group name attribute",
    "group_email": "Group email attribute",
    "membership_on": "Memberships are read from",
    "member_of": "User's groups attribute (memberOf)",
    "group_member": "Group's members attribute (member)",
    "disabled_attribute": "Disabled: attribute",
    "disabled_match": "Disabled: how the attribute is read",
    "disabled_value": "Disabled: value (bit mask or value)",
}
# The mapping fields a form shows as choices rather than free text.
MAPPING_CHOICES: dict[str, list[tuple[str, str]]] = {
    "membership_on": [("user", "the users (memberOf)"), ("group", "the groups (member)")],
    "disabled_match": [
        ("bitmask", "disabled when value & mask (AD userAccountControl 0x2)"),
        ("equals", "disabled when the value equals"),
        ("present", "disabled when the attribute is present (pwdAccountLockedTime)"),
    ],
}
# An empty attribute is simply not read; the last three are checked in clean() instead.
OPTIONAL_MAPPING = {
    "display_name",
    "department",
    "title",
    "manager",
    "group_email",
    "disabled_value",
    "member_of",
    "group_member",
}


class GoogleWorkspaceSourceForm(forms.ModelForm):  # type: ignore[type-arg]
    platform = forms.ModelChoiceField(
        queryset=Platform.objects.filter(kind=Platform.Kind.GOOGLE_WORKSPACE).order_by("name"),
        help_text="Its service account reads the directory; it needs the user and group "
        "scopes delegated.",
    )

    class Meta:
        model = IdentitySource
        fields = ["name", "enabled", "platform", "gws_domain", "page_size", "sync_interval_minutes"]
        field_classes = {"name": SingleLineCharField, "gws_domain": SingleLineCharField}
        help_texts = {
            "sync_interval_minutes": SCHEDULE_HELP,
            "page_size": "Users per page (max 500)",
        }

    def clean_page_size(self) -> int:
        size = int(self.cleaned_data["page_size"])
        if not 1 <= size <= 500:
            raise forms.ValidationError("Google lists 1 to 500 users per page.")
        return size


# Where the stored bind password is sent.
LDAP_DESTINATIONS = ("ldap_url",)


class LdapSourceForm(forms.ModelForm):  # type: ignore[type-arg]
    bind_password = forms.CharField(
        label="Bind password",
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Stored in the vault; shown afterwards only as “stored”.",
    )
    ca_certificate_file = forms.FileField(
        label="CA certificate file",
        required=False,
        help_text="Upload the CA's certificate (PEM) instead of pasting it above.",
    )

    class Meta:
        model = IdentitySource
        fields = [
            "name",
            "enabled",
            "ldap_url",
            "ldap_start_tls",
            "ldap_ca_certificate",
            "ldap_bind_dn",
            "ldap_base_dn",
            "page_size",
            "sync_interval_minutes",
        ]
        help_texts = {"sync_interval_minutes": SCHEDULE_HELP, "page_size": "Entries per page"}
        field_classes = {
            "name": SingleLineCharField,
            "ldap_bind_dn": SingleLineCharField,
            "ldap_base_dn": SingleLineCharField,
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        mapping = self.instance.mapping() if self.instance.pk else dict(AD_MAPPING)
        for key, label in MAPPING_LABELS.items():
            name = f"map_{key}"
            if key in MAPPING_CHOICES:
                self.fields[name] = forms.ChoiceField(
                    label=label, choices=MAPPING_CHOICES[key], initial=mapping[key]
                )
            else:
                self.fields[name] = SingleLineCharField(
                    label=label,
                    initial=mapping[key],
                    required=key not in OPTIONAL_MAPPING,
                    max_length=500,
                )

    def clean_ldap_url(self) -> str:
        url = str(self.cleaned_data["ldap_url"]).strip()
        if not url.lower().startswith(("ldap://", "ldaps://")):
            raise forms.ValidationError("Use ldap://host:389 or ldaps://host:636.")
        return url

    def clean_ldap_ca_certificate(self) -> str:
        try:
            return normalize_ca_certificate(str(self.cleaned_data.get("ldap_ca_certificate") or ""))
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_ca_certificate_file(self) -> str:
        upload = self.cleaned_data.get("ca_certificate_file")
        if not upload:
            return ""
        if upload.size > 100_000:
            raise forms.ValidationError("A CA certificate file is at most 100 KB.")
        try:
            return normalize_ca_certificate(upload.read().decode("ascii"))
        except (UnicodeDecodeError, ValueError) as exc:
            message = str(exc) if isinstance(exc, ValueError) else "This is not a PEM file."
            raise forms.ValidationError(message) from None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("ca_certificate_file"):
            cleaned["ldap_ca_certificate"] = cleaned["ca_certificate_file"]
        url = str(cleaned.get("ldap_url") or "")
        if cleaned.get("ldap_start_tls") and url.lower().startswith("ldaps://"):
            self.add_error("ldap_start_tls", "Choose LDAPS or StartTLS, not both.")
        stored = bool(self.instance.pk and self.instance.ldap_password_ref)
        if cleaned.get("ldap_bind_dn") and not cleaned.get("bind_password") and not stored:
            self.add_error("bind_password", "Required with a bind DN.")
        require_secret_again(
            self,
            "bind_password",
            destinations=LDAP_DESTINATIONS,
            has_stored_secret=stored,
        )
        if cleaned.get("map_disabled_match") in ("bitmask", "equals") and not cleaned.get(
            "map_disabled_value"
        ):
            self.add_error("map_disabled_value", "Required for this way of reading it.")
        if cleaned.get("map_disabled_match") == "bitmask":
            try:
                int(str(cleaned.get("map_disabled_value") or "0"), 0)
            except ValueError:
                self.add_error("map_disabled_value", "A number, such as 2 or 0x2.")
        membership = cleaned.get("map_membership_on")
        needed = "map_member_of" if membership == "user" else "map_group_member"
        if membership and not cleaned.get(needed):
            self.add_error(needed, "Required to read memberships this way.")
        return cleaned

    def mapping(self) -> dict[str, str]:
        return {key: str(self.cleaned_data.get(f"map_{key}") or "") for key in MAPPING_LABELS}


SOURCE_FORMS: dict[str, type[forms.ModelForm]] = {  # type: ignore[type-arg]
    IdentitySource.Kind.GOOGLE_WORKSPACE: GoogleWorkspaceSourceForm,
    IdentitySource.Kind.LDAP: LdapSourceForm,
}


class RuleForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = JmlRule
        fields = [
            "platform",
            "dry_run",
            "on_joiner",
            "on_mover",
            "on_leaver",
            "login_domain",
            "sync_groups",
            "deactivate_accounts",
            "run_as",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        platform_field = self.fields["platform"]
        run_as_field = self.fields["run_as"]
        assert isinstance(platform_field, forms.ModelChoiceField)
        assert isinstance(run_as_field, forms.ModelChoiceField)
        platform_field.queryset = Platform.objects.order_by("name")
        run_as_field.queryset = get_user_model().objects.filter(is_active=True).order_by("username")


class SyncNowForm(forms.Form):
    force = forms.BooleanField(
        required=False,
        label="Override the safety brake",
        help_text="Commit even if the source returns no users or more leavers than allowed.",
    )
    confirm = forms.BooleanField(
        required=False, label="I have checked the source and want to override the brake"
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("force") and not cleaned.get("confirm"):
            self.add_error("confirm", "Tick this to confirm the override.")
        return cleaned
