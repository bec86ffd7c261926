"""SAML single sign-on of AccessHive's own users: settings, sign-in, sign-out."""

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from django.conf import settings
from django.contrib.auth import login, logout
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.http import HttpRequest
from django.shortcuts import resolve_url
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme

from accounts.roles import Role
from accounts.services import set_role
from sso import saml
from sso.errors import SignInRefused
from sso.models import SINGLE_ROW_ID, SamlSettings, UsedAssertion
from trail.origin import Origin, acting_from, client_ip
from trail.services import record, record_anonymous_refusal
from vault.backends import get_vault

log = logging.getLogger(__name__)

AUTH_METHOD_SESSION_KEY = "accesshive_auth_method"
SAML_SESSION_KEY = "accesshive_saml"
LOGOUT_REQUEST_SESSION_KEY = "accesshive_saml_logout_request"
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
USERNAME_MAX_LENGTH = 150  # django.contrib.auth's User.username
SETTINGS_FIELDS = (
    "enabled",
    "accept_signed_response",
    "idp_entity_id",
    "idp_sso_url",
    "idp_slo_url",
    "idp_x509_cert",
    "email_attribute",
    "first_name_attribute",
    "last_name_attribute",
    "groups_attribute",
    "admin_groups",
    "operator_groups",
    "viewer_groups",
    "default_role",
    "allow_idp_initiated",
)
# Strongest first: a person in several mapped groups gets the strongest role.
ROLE_ORDER = (Role.ADMIN, Role.OPERATOR, Role.VIEWER)


@dataclass(frozen=True)
class SignedIn:
    user: User
    request_id: str | None
    redirect_to: str


@dataclass(frozen=True)
class Person:
    """Who the IdP says is signing in, read with the attribute names of the settings."""

    email: str
    first_name: str
    last_name: str
    groups: tuple[str, ...]


# --- settings ---------------------------------------------------------------------------------


def get_settings() -> SamlSettings:
    """The settings for display: the defaults, unsaved, until an admin saves them (a page
    view writes nothing)."""
    return SamlSettings.objects.filter(pk=SINGLE_ROW_ID).first() or SamlSettings(pk=SINGLE_ROW_ID)


def is_sso_ready() -> bool:
    """Whether the sign-in page offers "Sign in with SSO"."""
    return get_settings().is_ready


@transaction.atomic
def update_settings(*, actor: Any, **values: Any) -> SamlSettings:
    """Save the given SamlSettings fields; records which ones changed (never their values:
    the certificate is public, but the trail says who changed what, not to what)."""
    unknown = set(values) - set(SETTINGS_FIELDS)
    if unknown:
        raise TypeError(f"not SAML settings fields: {sorted(unknown)}")
    row, _ = SamlSettings.objects.select_for_update().get_or_create(pk=SINGLE_ROW_ID)
    changed = [
        name for name in SETTINGS_FIELDS if name in values and getattr(row, name) != values[name]
    ]
    if not changed:
        return row
    for name in changed:
        setattr(row, name, values[name])
    row.updated_by = actor if getattr(actor, "is_authenticated", False) else None
    row.save()
    record("sso.settings_changed", actor=actor, target=row, changed=changed)
    return row


SP_KEY_PATH = "sso/sp-key"
SP_CERTIFICATE_YEARS = 3


@transaction.atomic
def generate_sp_key(*, actor: Any, common_name: str = "AccessHive SAML SP") -> SamlSettings:
    """A new SP key pair: the private key to the vault, the certificate on the settings.
    From then on AuthnRequests, logout messages and the metadata are signed, and encrypted
    assertions are decrypted; the IdP needs the new metadata (or certificate)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = timezone.now()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365 * SP_CERTIFICATE_YEARS))
        .sign(key, hashes.SHA256())
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    ref = get_vault().write(SP_KEY_PATH, {"private_key": private_pem})
    row, _ = SamlSettings.objects.select_for_update().get_or_create(pk=SINGLE_ROW_ID)
    row.sp_certificate = certificate.public_bytes(serialization.Encoding.PEM).decode()
    row.sp_key_ref = str(ref)
    row.updated_by = actor if getattr(actor, "is_authenticated", False) else None
    row.save()
    record("sso.settings_changed", actor=actor, target=row, changed=["sp_certificate"])
    return row


def get_metadata_xml(request: HttpRequest) -> str:
    return saml.metadata_xml(get_settings(), request)


# --- sign-in ----------------------------------------------------------------------------------


def safe_redirect_target(request: HttpRequest, candidate: str | None) -> str:
    """``candidate`` if it stays on this host, else where a sign-in lands by default."""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return resolve_url(settings.LOGIN_REDIRECT_URL)


def start_sign_in(request: HttpRequest, *, next_url: str | None) -> tuple[str, str]:
    """The IdP URL to send the browser to, and the AuthnRequest ID the answer must carry.
    The target after sign-in travels as RelayState, checked again when it comes back."""
    config = get_settings()
    if not config.is_ready:
        raise SignInRefused("not_enabled", "single sign-on is not turned on", status=404)
    return saml.login_redirect(config, request, return_to=safe_redirect_target(request, next_url))


def sign_in(
    request: HttpRequest, *, saml_response: str, relay_state: str, pending: Sequence[str]
) -> SignedIn:
    """Sign in the person a SAML response names. ``pending`` are the AuthnRequest IDs this
    browser is waiting on; a refusal is logged and recorded on the trail, then raised."""
    with acting_from(Origin(source="sso", ip=client_ip(request))):
        try:
            return _sign_in(request, saml_response, relay_state, pending)
        except SignInRefused as refusal:
            log.warning(
                "sso.signin.refused",
                extra={"reason": refusal.code, "email": refusal.email or None},
            )
            # Anyone can post to the ACS: a flood from one address is counted, not recorded.
            # A forgery attempt stands out on the trail from a faulty or stale response.
            record_anonymous_refusal(
                "user.sign_in_tampering"
                if refusal.code == saml.TAMPERING
                else "user.sign_in_refused",
                target_label=refusal.email,
                reason=refusal.reason,
                code=refusal.code,
            )
            raise


def _sign_in(
    request: HttpRequest, saml_response: str, relay_state: str, pending: Sequence[str]
) -> SignedIn:
    config = get_settings()
    if not config.is_ready:
        raise SignInRefused("not_enabled", "single sign-on is not turned on", status=404)
    if not saml_response:
        raise SignInRefused("malformed", "the identity provider sent no SAML response", status=400)
    assertion = saml.verify_response(config, request, saml_response)
    person = read_person(config, assertion)
    if UsedAssertion.objects.filter(assertion_id=assertion.assertion_id).exists():
        raise _replayed(person)
    if assertion.in_response_to is None:
        if not config.allow_idp_initiated:
            raise SignInRefused(
                "unsolicited",
                "the identity provider sent a sign-in AccessHive did not ask for, and "
                "sign-ins started at the identity provider are turned off",
                email=person.email,
            )
    elif assertion.in_response_to not in pending:
        raise SignInRefused(
            "unknown_request",
            "the answer is for a sign-in that was not started in this browser (or took too "
            "long); start again from AccessHive's sign-in page",
            email=person.email,
        )
    role = role_for(config, person)
    with transaction.atomic():
        try:
            with transaction.atomic():
                UsedAssertion.objects.create(
                    assertion_id=assertion.assertion_id, not_on_or_after=assertion.usable_until
                )
        except IntegrityError:
            raise _replayed(person) from None
        user = _match_user(person)
        if not user.is_superuser:
            _update_user(user, person)
            set_role(user, role, actor=None)
        # A fresh session: nothing of an earlier one (another person's) carries over, and
        # the sign-in method is in it before login() tells its receivers.
        request.session.flush()
        request.session[AUTH_METHOD_SESSION_KEY] = "saml"
        request.session[SAML_SESSION_KEY] = {
            "name_id": assertion.name_id,
            "name_id_format": assertion.name_id_format,
            "name_id_nq": assertion.name_id_nq,
            "name_id_spnq": assertion.name_id_spnq,
            "session_index": assertion.session_index,
        }
        login(request, user, backend=MODEL_BACKEND)
        prune_used_assertions()
    return SignedIn(
        user=user,
        request_id=assertion.in_response_to,
        redirect_to=safe_redirect_target(request, relay_state),
    )


def _replayed(person: Person) -> SignInRefused:
    return SignInRefused(
        "replayed",
        "this assertion was already used to sign in; each one is good for one sign-in",
        email=person.email,
    )


def read_person(config: SamlSettings, assertion: saml.VerifiedAssertion) -> Person:
    emails = assertion.attribute(config.email_attribute)
    email = emails[0].strip() if emails else ""
    if not email and assertion.name_id_format == saml.EMAIL_NAME_ID_FORMAT:
        email = assertion.name_id.strip()
    if not email:
        raise SignInRefused(
            "no_email",
            f'the identity provider sent no email address (no "{config.email_attribute}" '
            "attribute, and the NameID is not an email address)",
        )
    try:
        validate_email(email)
    except ValidationError:
        raise SignInRefused(
            "bad_email", "the email address the identity provider sent is not valid"
        ) from None
    if len(email) > USERNAME_MAX_LENGTH:
        raise SignInRefused("bad_email", "the email address is too long for a user name")
    first = assertion.attribute(config.first_name_attribute)
    last = assertion.attribute(config.last_name_attribute)
    return Person(
        email=email.lower(),
        first_name=first[0][:150] if first else "",
        last_name=last[0][:150] if last else "",
        groups=tuple(assertion.attribute(config.groups_attribute)),
    )


def role_for(config: SamlSettings, person: Person) -> str:
    """The strongest role one of the person's groups maps to, else the default role."""
    groups = {group.casefold() for group in person.groups}
    mapped = {
        Role.ADMIN: config.admin_groups,
        Role.OPERATOR: config.operator_groups,
        Role.VIEWER: config.viewer_groups,
    }
    for role in ROLE_ORDER:
        if groups & {group.casefold() for group in mapped[role]}:
            return role.value
    if config.default_role:
        return str(config.default_role)
    raise SignInRefused(
        "no_role",
        "none of the person's groups at the identity provider is mapped to an AccessHive "
        "role, and there is no default role",
        email=person.email,
    )


def _match_user(person: Person) -> User:
    """The existing user with this email (as email or user name), or a new one who can
    only sign in through the IdP."""
    matches = list(
        User.objects.select_for_update()
        .filter(Q(email__iexact=person.email) | Q(username__iexact=person.email))
        .order_by("pk")[:2]
    )
    if len(matches) > 1:
        raise SignInRefused(
            "ambiguous_user",
            f"more than one AccessHive user has the email {person.email}; an admin must "
            "change one of them",
            email=person.email,
        )
    if not matches:
        return User.objects.create_user(username=person.email, email=person.email)
    user = matches[0]
    if not user.is_active:
        raise SignInRefused(
            "inactive_user",
            f"the AccessHive user {user.get_username()} is deactivated",
            email=person.email,
        )
    return user


def _update_user(user: User, person: Person) -> None:
    wanted = {"email": person.email}
    if person.first_name:
        wanted["first_name"] = person.first_name
    if person.last_name:
        wanted["last_name"] = person.last_name
    changed = [name for name, value in wanted.items() if getattr(user, name) != value]
    for name in changed:
        setattr(user, name, wanted[name])
    if changed:
        user.save(update_fields=changed)


def prune_used_assertions() -> int:
    """Forget assertions that can no longer be accepted anyway."""
    deleted, _ = UsedAssertion.objects.filter(not_on_or_after__lt=timezone.now()).delete()
    return deleted


# --- sign-out ---------------------------------------------------------------------------------


def sign_out(request: HttpRequest) -> str:
    """End the local session; for a SAML session with an IdP sign-out URL, the IdP URL
    carrying a LogoutRequest (single logout), else the sign-in page."""
    config = get_settings()
    was_saml = request.session.get(AUTH_METHOD_SESSION_KEY) == "saml"
    saml_session = request.session.get(SAML_SESSION_KEY) or {}
    logout(request)
    login_page = resolve_url(settings.LOGIN_URL)
    if not (was_saml and config.is_ready and config.idp_slo_url and saml_session.get("name_id")):
        return login_page
    url, request_id = saml.logout_redirect(
        config,
        request,
        name_id=saml_session["name_id"],
        name_id_format=saml_session.get("name_id_format", ""),
        name_id_nq=saml_session.get("name_id_nq", ""),
        name_id_spnq=saml_session.get("name_id_spnq", ""),
        session_index=saml_session.get("session_index", ""),
        return_to=request.build_absolute_uri(login_page),
    )
    request.session[LOGOUT_REQUEST_SESSION_KEY] = request_id
    return url


def handle_logout_message(request: HttpRequest) -> saml.LogoutOutcome:
    """A message from the IdP at the SLS. Its own LogoutRequest ends the local session when
    it names this session: the same NameID, and either signed or carrying this session's
    SessionIndex (which nobody but the IdP knows), so a forged link cannot sign people out."""
    config = get_settings()
    logout_request_id = request.session.pop(LOGOUT_REQUEST_SESSION_KEY, None)

    def end_session(idp_request: saml.IdpLogoutRequest) -> None:
        ours = request.session.get(SAML_SESSION_KEY) or {}
        if not ours.get("name_id") or idp_request.name_id != ours["name_id"]:
            return
        if idp_request.signed or ours.get("session_index") in idp_request.session_indexes:
            logout(request)

    return saml.process_logout_message(
        config, request, logout_request_id=logout_request_id, end_session=end_session
    )
