"""The identities API (/api/v1/identities/): list, create and detail; creation is validated
by the very form classes the pages use."""

import json
from datetime import datetime
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from ninja import Query, Router, Schema, Status
from pydantic import Field

from identities import queries, services
from identities.forms import IDENTITY_FORMS, IdentityForm, IdentityProviderForm, PlatformForm
from identities.models import (
    Identity,
    IdentityProvider,
    IdentityStatus,
    IdentityType,
    Platform,
)
from jobs.models import Job, JobStatus
from web.api import forms as api_forms
from web.api import idempotency
from web.api.auth import allowed
from web.api.paging import BEFORE_DESCRIPTION, as_params, next_url
from web.api.problems import ApiError, Problem, not_found
from web.api.schemas import Out
from web.api.types import Id
from web.inputs import InvalidInputError, load_json

VIEW_PERMISSION = "identities.view_identity"
ADD_PERMISSION = "identities.add_identity"
# The largest identity is a service-account key (at most 64 KB) with a few short fields.
MAX_BODY_BYTES = 256 * 1024
# Sent as form fields in the pages, but a JSON body carries the key itself as "json_key".
FILE_ONLY_FIELDS = frozenset({"json_key_file"})


class BadBody(ValueError):
    """The request body cannot be read as one identity; ``errors`` names the fields."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("invalid request body")
        self.errors = errors


def invalid(errors: dict[str, list[str]]) -> ApiError:
    return ApiError(400, "invalid identity: see errors", errors)


# --- serialisation --------------------------------------------------------------------------


def api_url(request: HttpRequest, identity_id: int) -> str:
    return request.build_absolute_uri(reverse("identities:api-detail", args=[identity_id]))


def identity_summary(request: HttpRequest, identity: Identity) -> dict[str, Any]:
    """One row of the list: what the identities page shows, never a secret."""
    return {
        "id": identity.pk,
        "type": identity.identity_type,
        "type_label": identity.get_identity_type_display(),
        "status": identity.status,
        "status_label": identity.get_status_display(),
        "platform": {"id": identity.platform_id, "name": identity.platform.name},
        "display_name": identity.display_name,
        "login": identity.login,
        "created_at": identity.created_at,
        "created_by": identity.created_by.get_username() if identity.created_by else None,
        "url": api_url(request, identity.pk),
    }


def identity_detail_data(
    request: HttpRequest, identity: Identity, jobs: list[Job]
) -> dict[str, Any]:
    """Everything about one identity: its fields, its vault reference (never the secret) and
    its jobs."""
    return {
        **identity_summary(request, identity),
        "given_name": identity.given_name,
        "family_name": identity.family_name,
        "org_unit_path": identity.org_unit_path,
        "gws_user_id": identity.gws_user_id,
        "idp_user_id": identity.idp_user_id,
        "secret_ref": identity.secret_ref or None,
        "updated_at": identity.updated_at,
        "jobs": [
            {
                "id": job.pk,
                "type": job.job_type,
                "type_label": job.type_label,
                "status": job.status,
                "status_label": job.get_status_display(),
                "url": request.build_absolute_uri(reverse("jobs:api-detail", args=[job.pk])),
            }
            for job in jobs
        ],
    }


# --- reading the body -----------------------------------------------------------------------


def read_json_object(request: HttpRequest) -> dict[str, Any]:
    """The body as a JSON object, refusing anything over MAX_BODY_BYTES before parsing it."""
    too_big = BadBody({"body": [f"The body is larger than {MAX_BODY_BYTES // 1024} KB."]})
    length = request.META.get("CONTENT_LENGTH") or ""
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise too_big
    try:
        raw = request.body
    except RequestDataTooBig:
        raise too_big from None
    if len(raw) > MAX_BODY_BYTES:
        raise too_big
    try:
        body = load_json(raw)
    except InvalidInputError as exc:
        raise BadBody({"body": [exc.message]}) from None
    if not isinstance(body, dict):
        raise BadBody({"body": ["The body must be a JSON object."]})
    return body


def form_class_for(body: dict[str, Any]) -> type[IdentityForm]:
    identity_type = body.get("type")
    form_class = IDENTITY_FORMS.get(identity_type) if isinstance(identity_type, str) else None
    if form_class is None:
        expected = ", ".join(key for key in IdentityType.values if key in IDENTITY_FORMS)
        problem = "This field is required." if identity_type in (None, "") else "Unknown type."
        raise BadBody({"type": [f"{problem} Expected one of: {expected}."]})
    return form_class


def form_data(form_class: type[IdentityForm], body: dict[str, Any]) -> dict[str, Any]:
    """The body as the form's data: the same field names, scalar values only (a service
    account's "json_key" may also be the key's JSON object). Values are never quoted back."""
    fields = [name for name in form_class.base_fields if name not in FILE_ONLY_FIELDS]
    errors: dict[str, list[str]] = {}
    data: dict[str, Any] = {}
    for name, value in body.items():
        if name == "type" or value is None:
            continue
        if name not in fields:
            errors[name] = [f"Unknown field for this type. Expected: {', '.join(fields)}."]
        elif name == "json_key" and isinstance(value, dict):
            data[name] = json.dumps(value)
        elif isinstance(value, str | int) and not isinstance(value, bool):
            data[name] = value
        elif name == "json_key":
            errors[name] = ["Must be the key's JSON object, or that object as a string."]
        else:
            errors[name] = ["Must be a string or a whole number."]
    if errors:
        raise BadBody(errors)
    return data


def form_errors(form: IdentityForm) -> dict[str, list[str]]:
    return {
        field: [item["message"] for item in items]
        for field, items in form.errors.get_json_data().items()
    }


# --- schemas --------------------------------------------------------------------------------

router = Router(tags=["identities"])
ERRORS: dict[int, Any] = {400: Problem, 401: Problem, 403: Problem}


class IdentityPlatform(Out):
    id: int
    name: str


class IdentitySummary(Out):
    id: int
    type: IdentityType
    type_label: str
    status: IdentityStatus
    status_label: str
    platform: IdentityPlatform
    display_name: str
    login: str
    created_at: datetime
    created_by: str | None
    url: str


class IdentityJob(Out):
    id: int
    type: str
    type_label: str
    status: JobStatus
    status_label: str
    url: str


class IdentityDetail(IdentitySummary):
    given_name: str
    family_name: str
    org_unit_path: str
    gws_user_id: str
    idp_user_id: str
    secret_ref: str | None = Field(description="The vault reference; never the secret")
    updated_at: datetime
    jobs: list[IdentityJob]


class IdentityPage(Out):
    results: list[IdentitySummary]
    next: str | None = Field(description="The next page's URL, or null on the last page")


class IdentityQuery(Schema):
    status: IdentityStatus | None = None
    type: IdentityType | None = None
    platform: Id | None = Field(None, description="A platform id")
    before: Id | None = Field(None, description=BEFORE_DESCRIPTION)


def create_body_schema() -> dict[str, Any]:
    """The create body per identity type, from the page's form fields (which validate it)."""
    variants = []
    for key, form_class in IDENTITY_FORMS.items():
        fields = [name for name in form_class.base_fields if name not in FILE_ONLY_FIELDS]
        properties: dict[str, Any] = {"type": {"const": key}}
        for name in fields:
            field = form_class.base_fields[name]
            described = {"description": str(field.help_text)} if field.help_text else {}
            properties[name] = {"type": ["string", "integer"], **described}
        if key == IdentityType.SERVICE_ACCOUNT and "json_key" not in properties:
            properties["json_key"] = {"type": ["string", "object"]}
        required = ["type"] + [n for n in fields if form_class.base_fields[n].required]
        variants.append(
            {
                "type": "object",
                "title": str(IdentityType(key).label),
                "properties": properties,
                "required": required,
                "additionalProperties": False,
            }
        )
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"oneOf": variants}}},
        },
        **idempotency.HEADER_DOC,
    }


# --- endpoints ------------------------------------------------------------------------------


@router.get("identities/", response={200: IdentityPage, **ERRORS}, auth=allowed(VIEW_PERMISSION))
def list_identities(request: HttpRequest, query: Query[IdentityQuery]) -> dict[str, Any]:
    """Identities newest first, filtered like the identities page."""
    params = as_params(query, "before")
    filters = queries.parse_filters(params)
    page = queries.list_identities(filters, before=query.before)
    return {
        "results": [identity_summary(request, identity) for identity in page.identities],
        "next": next_url(request, "identities:api-list", filters.as_query(), page.next_before),
    }


# Creating needs viewing too: the answer is the new identity.
@router.post(
    "identities/",
    response={201: IdentityDetail, 409: Problem, 413: Problem, **ERRORS},
    auth=allowed(VIEW_PERMISSION, ADD_PERMISSION),
    openapi_extra=create_body_schema(),
)
def create_identity(request: HttpRequest) -> HttpResponse:
    """Create an identity of any type; the body has the fields of that type's page form.
    Secrets go to the vault; the answer holds only the vault reference."""

    def run() -> tuple[int, dict[str, Any]]:
        try:
            body = read_json_object(request)
            form_class = form_class_for(body)
            form = form_class(data=form_data(form_class, body))
        except BadBody as exc:
            raise invalid(exc.errors) from None
        if not form.is_valid():
            raise invalid(form_errors(form))
        try:
            identity = services.create_identity(form.to_input(), actor=request.user)
        except services.DuplicateIdentityError as exc:
            raise invalid({form.login_field: [str(exc)]}) from None
        jobs = services.list_identity_jobs(identity)
        return 201, IdentityDetail.model_validate(
            identity_detail_data(request, identity, jobs)
        ).model_dump(mode="json")

    return idempotency.create_once(request, run, location=lambda body: str(body["url"]))


@router.get(
    "identities/{int:identity_id}/",
    response={200: IdentityDetail, 404: Problem, **ERRORS},
    auth=allowed(VIEW_PERMISSION),
)
def get_identity(request: HttpRequest, identity_id: Id) -> dict[str, Any]:
    """One identity: its fields, its vault reference (never the secret) and its jobs."""
    identity = queries.get_identity(identity_id)
    if identity is None:
        raise not_found("identity", identity_id)
    return identity_detail_data(request, identity, services.list_identity_jobs(identity))


# --- platforms and identity providers (the Settings pages' create and edit) -----------------

ADD_PLATFORM = "identities.add_platform"
CHANGE_PLATFORM = "identities.change_platform"
ADD_PROVIDER = "identities.add_identityprovider"
CHANGE_PROVIDER = "identities.change_identityprovider"
SAVED: dict[int, Any] = {400: Problem, 401: Problem, 403: Problem}


class PlatformOut(Out):
    id: int
    name: str
    kind: str
    identity_provider: int | None
    primary_domain: str
    customer_id: str
    admin_email: str
    api_endpoint: str
    service_account_key_stored: bool = Field(description="The key itself is only in the vault")
    created_at: datetime


class ProviderOut(Out):
    id: int
    name: str
    scim_base_url: str
    scim_token_stored: bool = Field(description="The token itself is only in the vault")


def platform_data(platform: Platform) -> dict[str, Any]:
    return {
        "id": platform.pk,
        "name": platform.name,
        "kind": platform.kind,
        "identity_provider": platform.identity_provider_id,
        "primary_domain": platform.primary_domain,
        "customer_id": platform.customer_id,
        "admin_email": platform.admin_email,
        "api_endpoint": platform.api_endpoint,
        "service_account_key_stored": bool(platform.service_account_key_ref),
        "created_at": platform.created_at,
    }


def provider_data(provider: IdentityProvider) -> dict[str, Any]:
    return {
        "id": provider.pk,
        "name": provider.name,
        "scim_base_url": provider.scim_base_url,
        "scim_token_stored": bool(provider.token_ref),
    }


KEY_FIELD = ("service_account_key",)
PLATFORM_BODY = api_forms.body_schema(PlatformForm, objects=KEY_FIELD)
PROVIDER_BODY = api_forms.body_schema(IdentityProviderForm)


@router.post(
    "platforms/",
    response={201: PlatformOut, **SAVED},
    auth=allowed(ADD_PLATFORM),
    openapi_extra=PLATFORM_BODY,
)
def create_platform(request: HttpRequest) -> Status[dict[str, Any]]:
    """Create a platform, as Settings > Platforms > New does (the key goes to the vault)."""
    form = api_forms.bind(PlatformForm, api_forms.read_object(request), objects=KEY_FIELD)
    fields = {name: form.cleaned_data[name] for name in PlatformForm.Meta.fields}
    key = form.cleaned_data["service_account_key"]
    platform = services.create_platform(service_account_key=key, actor=request.user, **fields)
    return Status(201, platform_data(platform))


@router.put(
    "platforms/{int:platform_id}/",
    response={200: PlatformOut, 404: Problem, **SAVED},
    auth=allowed(CHANGE_PLATFORM),
    openapi_extra=PLATFORM_BODY,
)
def update_platform(request: HttpRequest, platform_id: Id) -> dict[str, Any]:
    """Save a platform's settings, as its edit page does: every field is sent; a key left
    out keeps the stored one."""
    platform = queries.get_platform(platform_id)
    if platform is None:
        raise not_found("platform", platform_id)
    form = api_forms.bind(
        PlatformForm, api_forms.read_object(request), objects=KEY_FIELD, instance=platform
    )
    fields = {name: form.cleaned_data[name] for name in PlatformForm.Meta.fields}
    key = form.cleaned_data["service_account_key"]
    platform = services.update_platform(
        platform, service_account_key=key, actor=request.user, **fields
    )
    return platform_data(platform)


@router.post(
    "identity-providers/",
    response={201: ProviderOut, **SAVED},
    auth=allowed(ADD_PROVIDER),
    openapi_extra=PROVIDER_BODY,
)
def create_provider(request: HttpRequest) -> Status[dict[str, Any]]:
    """Create a SCIM identity provider (the token goes to the vault)."""
    form = api_forms.bind(IdentityProviderForm, api_forms.read_object(request))
    fields = {name: form.cleaned_data[name] for name in IdentityProviderForm.Meta.fields}
    provider = services.create_identity_provider(
        token=form.cleaned_data["scim_token"], actor=request.user, **fields
    )
    return Status(201, provider_data(provider))


@router.put(
    "identity-providers/{int:provider_id}/",
    response={200: ProviderOut, 404: Problem, **SAVED},
    auth=allowed(CHANGE_PROVIDER),
    openapi_extra=PROVIDER_BODY,
)
def update_provider(request: HttpRequest, provider_id: Id) -> dict[str, Any]:
    """Save an identity provider, as its edit page does; a token left out keeps the stored one."""
    provider = queries.get_identity_provider(provider_id)
    if provider is None:
        raise not_found("identity provider", provider_id)
    form = api_forms.bind(IdentityProviderForm, api_forms.read_object(request), instance=provider)
    fields = {name: form.cleaned_data[name] for name in IdentityProviderForm.Meta.fields}
    provider = services.update_identity_provider(
        provider, token=form.cleaned_data["scim_token"], actor=request.user, **fields
    )
    return provider_data(provider)
