"""The single sign-on settings form: the IdP from pasted metadata or field by field, the
attribute names, and which IdP groups give which AccessHive role."""

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from sso import saml
from sso.models import SamlSettings
from web.inputs import SingleLineCharField
from web.pages import QueryForm

MAX_METADATA_BYTES = 512 * 1024
GROUP_FIELDS = ("admin_groups", "operator_groups", "viewer_groups")
IDP_FIELDS = ("idp_entity_id", "idp_sso_url", "idp_slo_url", "idp_x509_cert")
GROUPS_HELP = "One group name per line, as the identity provider sends it in the groups attribute"


def _wide() -> forms.TextInput:
    return forms.TextInput(attrs={"size": 70, "spellcheck": "false"})


def _text_area(rows: int) -> forms.Textarea:
    return forms.Textarea(attrs={"rows": rows, "cols": 80, "spellcheck": "false"})


class SamlSettingsForm(forms.Form):
    enabled = forms.BooleanField(
        required=False,
        label="Sign-in with SSO is on",
        help_text='The sign-in page offers "Sign in with SSO"; password sign-in stays for '
        "emergencies",
    )
    idp_metadata = forms.CharField(
        required=False,
        label="IdP metadata XML",
        widget=_text_area(6),
        help_text="Paste the identity provider's metadata to fill in the four fields below "
        "(what you paste wins over them)",
    )
    idp_entity_id = SingleLineCharField(
        required=False, max_length=1024, label="IdP entity ID", widget=_wide()
    )
    idp_sso_url = forms.URLField(
        required=False,
        assume_scheme="https",
        max_length=1024,
        widget=forms.URLInput(attrs={"size": 70}),
        label="IdP sign-in URL",
        help_text="Its SingleSignOnService with the HTTP-Redirect binding",
    )
    idp_slo_url = forms.URLField(
        required=False,
        assume_scheme="https",
        max_length=1024,
        widget=forms.URLInput(attrs={"size": 70}),
        label="IdP sign-out URL",
        help_text="Its SingleLogoutService (HTTP-Redirect); empty: signing out ends only "
        "AccessHive's session",
    )
    idp_x509_cert = forms.CharField(
        required=False,
        label="IdP signing certificate",
        widget=_text_area(6),
        help_text="PEM; several one after the other while the identity provider rolls its key over",
    )
    email_attribute = SingleLineCharField(
        max_length=200,
        initial="email",
        help_text="When it is missing, a NameID in the emailAddress format is the email",
    )
    first_name_attribute = SingleLineCharField(max_length=200, initial="firstName")
    last_name_attribute = SingleLineCharField(max_length=200, initial="lastName")
    groups_attribute = SingleLineCharField(max_length=200, initial="groups")
    admin_groups = forms.CharField(required=False, widget=_text_area(3), help_text=GROUPS_HELP)
    operator_groups = forms.CharField(required=False, widget=_text_area(3), help_text=GROUPS_HELP)
    viewer_groups = forms.CharField(required=False, widget=_text_area(3), help_text=GROUPS_HELP)
    default_role = forms.ChoiceField(
        required=False,
        choices=SamlSettings.DefaultRole.choices,
        label="Role when no group is mapped",
    )
    allow_idp_initiated = forms.BooleanField(
        required=False,
        label="Accept sign-ins started at the identity provider",
        help_text="Off: only answers to a sign-in started from AccessHive are accepted",
    )

    accept_signed_response = forms.BooleanField(
        required=False,
        label="Accept a signed response whose signature covers the assertion",
        help_text="Off: the assertion itself must be signed. Turn on for identity providers "
        "that sign only the whole response",
    )

    @classmethod
    def from_settings(cls, config: SamlSettings) -> "SamlSettingsForm":
        initial: dict[str, Any] = {
            name: getattr(config, name)
            for name in cls.base_fields
            if name != "idp_metadata" and name not in GROUP_FIELDS
        }
        initial.update({name: "\n".join(getattr(config, name)) for name in GROUP_FIELDS})
        return cls(initial=initial)

    def clean_idp_metadata(self) -> saml.IdpMetadata | None:
        raw = str(self.cleaned_data.get("idp_metadata") or "").strip()
        if not raw:
            return None
        if len(raw.encode()) > MAX_METADATA_BYTES:
            raise ValidationError(
                f"The metadata is larger than {MAX_METADATA_BYTES // 1024} KB; is it metadata?"
            )
        try:
            return saml.parse_idp_metadata(raw)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    def clean_idp_x509_cert(self) -> str:
        raw = str(self.cleaned_data.get("idp_x509_cert") or "")
        if "PRIVATE KEY" in raw:
            # Pasted by mistake; never rendered back into the page.
            self.data = {**self.data, self.add_prefix("idp_x509_cert"): ""}
        try:
            return saml.normalize_certificates(raw)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    def _groups(self, name: str) -> list[str]:
        groups: list[str] = []
        for line in str(self.cleaned_data.get(name) or "").splitlines():
            group = line.strip()
            if group and group not in groups:
                groups.append(group)
        return groups

    def clean_admin_groups(self) -> list[str]:
        return self._groups("admin_groups")

    def clean_operator_groups(self) -> list[str]:
        return self._groups("operator_groups")

    def clean_viewer_groups(self) -> list[str]:
        return self._groups("viewer_groups")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        metadata = cleaned.get("idp_metadata")
        if isinstance(metadata, saml.IdpMetadata):
            cleaned.update(
                idp_entity_id=metadata.entity_id,
                idp_sso_url=metadata.sso_url,
                idp_slo_url=metadata.slo_url,
                idp_x509_cert=metadata.certificates,
            )
            for name in IDP_FIELDS:
                self.errors.pop(name, None)
        if cleaned.get("enabled") and "idp_metadata" not in self.errors:
            for name in ("idp_entity_id", "idp_sso_url", "idp_x509_cert"):
                if not cleaned.get(name) and name not in self.errors:
                    self.add_error(
                        name, "Required while single sign-on is on (or paste the IdP metadata)."
                    )
            mapped = any(cleaned.get(name) for name in GROUP_FIELDS)
            if not mapped and not cleaned.get("default_role"):
                self.add_error(
                    None,
                    "Nobody could sign in: map at least one group to a role, or choose a "
                    "role for people with no mapped group.",
                )
        return cleaned

    def settings_values(self) -> dict[str, Any]:
        """The cleaned values as SamlSettings fields."""
        return {name: self.cleaned_data[name] for name in self.fields if name != "idp_metadata"}


class SignInQuery(QueryForm):
    """``?next=``: where to go after signing in (checked against our own host later)."""

    next = SingleLineCharField(required=False, max_length=2000, label="next")


class AssertionPost(QueryForm):
    """The IdP's HTTP-POST to the ACS: a base64 SAML response and the relay state."""

    SAMLResponse = forms.CharField(required=False, max_length=1_000_000, strip=False)
    RelayState = SingleLineCharField(required=False, max_length=2000, label="RelayState")
