"""One form per identity type, each with only the fields that type needs, plus the
platform and identity-provider forms. Secrets are never rendered back into a form."""

import json
from collections.abc import Mapping
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile

from assets.queries import list_org_unit_paths
from identities.models import Identity, IdentityProvider, IdentityType, Platform
from identities.services import IdentityInput
from web.destinations import require_secret_again
from web.inputs import SingleLineCharField

MAX_KEY_BYTES = 64 * 1024
SERVICE_ACCOUNT_KEY_FIELDS = ("type", "project_id", "private_key_id", "private_key", "client_email")


def parse_service_account_key(raw: str | bytes) -> dict[str, Any]:
    """A Google service-account JSON key, or a ValidationError saying what is wrong with it
    (never quoting the key itself)."""
    if len(raw) > MAX_KEY_BYTES:
        raise ValidationError(f"The key is larger than {MAX_KEY_BYTES // 1024} KB; is it a key?")
    try:
        key = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ValidationError("This is not valid JSON.") from None
    if not isinstance(key, dict):
        raise ValidationError("A service-account key is a JSON object.")
    if key.get("type") != "service_account":
        raise ValidationError(
            'This is not a Google service-account key ("type" must be "service_account").'
        )
    missing = [name for name in SERVICE_ACCOUNT_KEY_FIELDS if not key.get(name)]
    if missing:
        raise ValidationError(f"The key is missing: {', '.join(missing)}.")
    if "-----BEGIN PRIVATE KEY-----" not in str(key["private_key"]):
        raise ValidationError("private_key is not a PEM private key.")
    if "@" not in str(key["client_email"]):
        raise ValidationError("client_email is not an email address.")
    return key


def duplicate_error(login: str, platform: Platform) -> ValidationError:
    return ValidationError(f"{login} already exists on {platform.name}.", code="duplicate")


class LoadedPlatformField(forms.Field):
    """The platform field of a form checked among many (a CSV import's rows): it picks the
    platform from those loaded once for all of them instead of querying for each form."""

    default_error_messages = {
        "invalid_choice": forms.ModelChoiceField.default_error_messages["invalid_choice"]
    }

    def __init__(self, platforms: Mapping[int, Platform]) -> None:
        super().__init__()
        self.platforms = platforms

    def to_python(self, value: Any) -> Platform | None:
        if value in self.empty_values:
            return None
        try:
            return self.platforms[int(value)]
        except (KeyError, TypeError, ValueError):
            raise ValidationError(
                self.error_messages["invalid_choice"], code="invalid_choice"
            ) from None


class IdentityForm(forms.Form):
    """Base: the platform, the duplicate check every type shares, and the identity input.

    Checked among many, a form may get its ``platforms`` loaded already and leave the
    duplicate check (``check_duplicate=False``) to its caller, which asks for all the rows'
    logins at once (imports.csvfile.check_rows).
    """

    identity_type: str = ""
    login_field = "email"
    secret_fields: tuple[str, ...] = ()
    platform = forms.ModelChoiceField(queryset=Platform.objects.order_by("name"))

    def __init__(
        self,
        *args: Any,
        platforms: Mapping[int, Platform] | None = None,
        check_duplicate: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.check_duplicate = check_duplicate
        self.org_units: dict[int, set[str] | None] = {}
        if platforms is not None:
            self.fields["platform"] = LoadedPlatformField(platforms)

    def rebind(self, data: Mapping[str, Any]) -> "IdentityForm":
        """Bind this form to other data, checked as a new form bound to it would be, without
        copying its fields again: a CSV import checks thousands of rows with one form per
        type. What it looked up (the org units) it keeps."""
        self.data = data
        self.is_bound = True
        self._errors = None
        self.cleaned_data = {}
        self.__dict__.pop("changed_data", None)
        return self

    def known_org_unit_paths(self, platform: Platform) -> set[str] | None:
        """list_org_unit_paths, asked once per platform for as long as this form lives."""
        if platform.pk not in self.org_units:
            self.org_units[platform.pk] = list_org_unit_paths(platform)
        return self.org_units[platform.pk]

    def login(self) -> str:
        return str(self.cleaned_data[self.login_field]).strip()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        platform = cleaned.get("platform")
        if platform is not None and not self.errors and self.check_duplicate:
            login = self.login()
            if Identity.objects.filter(platform=platform, login=login).exists():
                self.add_error(self.login_field, duplicate_error(login, platform))
        return cleaned

    def secret(self) -> dict[str, str] | None:
        if not self.secret_fields:
            return None
        return {name: str(self.cleaned_data[name]) for name in self.secret_fields}

    def to_input(self) -> IdentityInput:
        return IdentityInput(
            identity_type=self.identity_type,
            platform=self.cleaned_data["platform"],
            display_name=self.cleaned_data.get("display_name") or self.login(),
            login=self.login(),
            secret=self.secret(),
        )


class DomainEmailMixin(forms.Form):
    """An email on the Google Workspace platform's primary domain."""

    def clean_email(self) -> str:
        email = str(self.cleaned_data["email"]).strip().lower()
        platform = self.cleaned_data.get("platform")
        domain = ""
        if platform is not None and platform.is_google_workspace:
            domain = platform.primary_domain.lower()
        if domain and not email.endswith("@" + domain):
            raise ValidationError(f"Not on the platform's domain {domain}.")
        return email


class HumanInteractiveForm(DomainEmailMixin, IdentityForm):
    identity_type = IdentityType.HUMAN_INTERACTIVE
    given_name = SingleLineCharField(max_length=100)
    family_name = SingleLineCharField(max_length=100)
    email = forms.EmailField(max_length=254)
    org_unit_path = SingleLineCharField(max_length=300, initial="/", required=False)
    field_order = ["platform", "given_name", "family_name", "email", "org_unit_path"]

    def clean_org_unit_path(self) -> str:
        path = str(self.cleaned_data.get("org_unit_path") or "/").strip()
        if not path.startswith("/"):
            raise ValidationError('An org unit path starts with "/", e.g. /Engineering.')
        platform = self.cleaned_data.get("platform")
        if platform is not None and platform.is_google_workspace:
            # Google refuses an unknown org unit only when the job runs; say it now when asset
            # discovery has told us which ones exist.
            known = self.known_org_unit_paths(platform)
            if known is not None and path.rstrip("/").lower() not in known | {""}:
                raise ValidationError(
                    f"{platform.name} has no org unit {path} (as of its last asset discovery)."
                )
        return path

    def clean_platform(self) -> Platform:
        platform: Platform = self.cleaned_data["platform"]
        if platform.identity_provider_id is None:
            raise ValidationError(
                f"{platform.name} has no identity provider for single sign-on; set one first."
            )
        return platform

    def to_input(self) -> IdentityInput:
        data = self.cleaned_data
        return IdentityInput(
            identity_type=self.identity_type,
            platform=data["platform"],
            display_name=f"{data['given_name']} {data['family_name']}",
            login=data["email"],
            given_name=data["given_name"],
            family_name=data["family_name"],
            org_unit_path=data["org_unit_path"],
        )


class ManagedSharedCredentialForm(DomainEmailMixin, IdentityForm):
    identity_type = IdentityType.SHARED_CREDENTIAL_MANAGED
    email = forms.EmailField(max_length=254, label="Account email")
    display_name = SingleLineCharField(max_length=200, required=False)

    def clean_platform(self) -> Platform:
        platform: Platform = self.cleaned_data["platform"]
        if not platform.is_google_workspace:
            raise ValidationError("A managed shared credential needs a Google Workspace platform.")
        return platform

    def to_input(self) -> IdentityInput:
        data = self.cleaned_data
        return IdentityInput(
            identity_type=self.identity_type,
            platform=data["platform"],
            display_name=data["display_name"] or data["email"],
            login=data["email"],
            given_name=data["display_name"] or data["email"].split("@")[0],
            family_name="Shared",
        )


class ExternalSharedCredentialForm(IdentityForm):
    identity_type = IdentityType.SHARED_CREDENTIAL_EXTERNAL
    username = SingleLineCharField(max_length=320)
    password = forms.CharField(max_length=1024, widget=forms.PasswordInput(render_value=False))
    display_name = SingleLineCharField(max_length=200, required=False)
    login_field = "username"
    secret_fields = ("username", "password")


class ServiceAccountForm(IdentityForm):
    identity_type = IdentityType.SERVICE_ACCOUNT
    json_key = forms.CharField(
        required=False, label="JSON key (paste)", widget=forms.PasswordInput(render_value=False)
    )
    json_key_file = forms.FileField(required=False, label="…or upload the JSON key file")
    display_name = SingleLineCharField(max_length=200, required=False)
    login_field = "json_key"

    def clean(self) -> dict[str, Any]:
        pasted = self.cleaned_data.get("json_key") or ""
        upload: UploadedFile[bytes] | None = self.cleaned_data.get("json_key_file")
        if upload is not None and upload.size is not None and upload.size > MAX_KEY_BYTES:
            self.add_error("json_key_file", f"The file is larger than {MAX_KEY_BYTES // 1024} KB.")
        elif upload is None and not pasted:
            self.add_error("json_key", "Paste the JSON key or upload its file.")
        else:
            raw = upload.read() if upload is not None else pasted
            field = "json_key_file" if upload is not None else "json_key"
            try:
                self.cleaned_data["key"] = parse_service_account_key(raw)
            except ValidationError as exc:
                self.add_error(field, exc)
        return super().clean()

    def login(self) -> str:
        return str(self.cleaned_data["key"]["client_email"]).lower()

    def to_input(self) -> IdentityInput:
        key = self.cleaned_data["key"]
        return IdentityInput(
            identity_type=self.identity_type,
            platform=self.cleaned_data["platform"],
            display_name=self.cleaned_data["display_name"] or self.login(),
            login=self.login(),
            secret={"json_key": json.dumps(key)},
        )


class ApiKeyForm(IdentityForm):
    identity_type = IdentityType.API_KEY
    name = SingleLineCharField(max_length=200, help_text="What the key is for, e.g. ci-deploy")
    api_key = forms.CharField(
        max_length=4096, label="API key", widget=forms.PasswordInput(render_value=False)
    )
    login_field = "name"
    secret_fields = ("api_key",)


class OAuthClientForm(IdentityForm):
    identity_type = IdentityType.OAUTH_CLIENT
    client_id = SingleLineCharField(max_length=500)
    client_secret = forms.CharField(max_length=4096, widget=forms.PasswordInput(render_value=False))
    display_name = SingleLineCharField(max_length=200, required=False)
    login_field = "client_id"
    secret_fields = ("client_id", "client_secret")


IDENTITY_FORMS: dict[str, type[IdentityForm]] = {
    form.identity_type: form
    for form in (
        HumanInteractiveForm,
        ManagedSharedCredentialForm,
        ExternalSharedCredentialForm,
        ServiceAccountForm,
        ApiKeyForm,
        OAuthClientForm,
    )
}


# Where each one's stored secret (or a token made with it) is sent.
PLATFORM_DESTINATIONS = ("api_endpoint",)
PROVIDER_DESTINATIONS = ("scim_base_url",)


class PlatformForm(forms.ModelForm):  # type: ignore[type-arg]
    api_endpoint = forms.URLField(
        required=False,
        assume_scheme="https",
        help_text="Leave empty for Google; set for the sandbox or a proxy",
    )
    service_account_key = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Google Workspace only: the service account's JSON key. Stored in the vault.",
    )

    class Meta:
        model = Platform
        fields = [
            "name",
            "kind",
            "identity_provider",
            "primary_domain",
            "customer_id",
            "admin_email",
            "api_endpoint",
            "rate_limit_per_second",
            "rate_limit_burst",
        ]
        field_classes = {
            "name": SingleLineCharField,
            "primary_domain": SingleLineCharField,
            "customer_id": SingleLineCharField,
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        defaults = "; ".join(
            f"{Platform.Kind(kind).label} {rate:g}/s, burst {burst}"
            for kind, (rate, burst) in sorted(settings.RATE_LIMITS.items())
            if kind in Platform.Kind.values
        )
        self.fields["rate_limit_per_second"].help_text = (
            "Shared by every worker's calls to this platform. Empty: the default for its kind"
            f" ({defaults or 'none set'}; other kinds: no limit). 0: no limit."
        )
        self.fields[
            "rate_limit_burst"
        ].help_text = "Calls allowed at once above the rate. Empty: about one second's worth."

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("rate_limit_burst") and cleaned.get("rate_limit_per_second") is None:
            self.add_error("rate_limit_burst", "Set the rate too, or leave both empty.")
        if cleaned.get("kind") != Platform.Kind.GOOGLE_WORKSPACE:
            if cleaned.get("service_account_key"):
                self.add_error(
                    "service_account_key",
                    "Only a Google Workspace platform uses a service-account key; "
                    "leave this empty.",
                )
            cleaned["service_account_key"] = None
        else:
            for name in ("primary_domain", "admin_email"):
                if not cleaned.get(name):
                    self.add_error(name, "Required for a Google Workspace platform.")
            raw = cleaned.get("service_account_key") or ""
            if raw:
                try:
                    cleaned["service_account_key"] = parse_service_account_key(raw)
                except ValidationError as exc:
                    self.add_error("service_account_key", exc)
            else:
                cleaned["service_account_key"] = None
                if not (self.instance.pk and self.instance.service_account_key_ref):
                    self.add_error(
                        "service_account_key", "Required for a Google Workspace platform."
                    )
            require_secret_again(
                self,
                "service_account_key",
                destinations=PLATFORM_DESTINATIONS,
                has_stored_secret=bool(self.instance.service_account_key_ref),
            )
            admin = str(cleaned.get("admin_email") or "").lower()
            domain = str(cleaned.get("primary_domain") or "").lower()
            if admin and domain and not admin.endswith("@" + domain):
                self.add_error("admin_email", f"Must be an admin on {domain}.")
        return cleaned


class IdentityProviderForm(forms.ModelForm):  # type: ignore[type-arg]
    scim_token = forms.CharField(
        label="SCIM bearer token",
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Stored in the vault; shown afterwards only as “stored”.",
    )

    scim_base_url = forms.URLField(label="SCIM base URL", max_length=500, assume_scheme="https")

    class Meta:
        model = IdentityProvider
        fields = ["name", "scim_base_url"]
        field_classes = {"name": SingleLineCharField}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not cleaned.get("scim_token") and not (self.instance.pk and self.instance.token_ref):
            self.add_error("scim_token", "Required.")
        require_secret_again(
            self,
            "scim_token",
            destinations=PROVIDER_DESTINATIONS,
            has_stored_secret=bool(self.instance.token_ref),
        )
        return cleaned
