"""The identities JSON API (/api/v1/identities/): list, create and detail over session or
bearer-token auth; creation is validated by the very form classes the pages use."""

import json
from typing import Any
from urllib.parse import urlencode

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from identities import queries, services
from identities.forms import IDENTITY_FORMS, IdentityForm
from identities.models import Identity, IdentityType
from jobs.api import endpoint, error
from jobs.models import Job
from web.pages import InvalidFilterError

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


def invalid(errors: dict[str, list[str]]) -> JsonResponse:
    return error(400, "invalid identity: see errors", errors=errors)


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
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadBody({"body": ["The body is not JSON."]}) from None
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


# --- endpoints ------------------------------------------------------------------------------


@csrf_exempt
def identity_collection(request: HttpRequest) -> HttpResponse:
    """/api/v1/identities/: GET lists, POST creates."""
    if request.method == "POST":
        return identity_create(request)
    if request.method == "GET":
        return identity_list(request)
    response = error(405, f"method {request.method} not allowed; use GET or POST")
    response["Allow"] = "GET, POST"
    return response


@endpoint("GET", VIEW_PERMISSION)
def identity_list(request: HttpRequest) -> HttpResponse:
    try:
        filters = queries.parse_filters(request.GET)
        before = queries.parse_before(request.GET)
    except InvalidFilterError as exc:
        return error(400, exc.message, parameter=exc.parameter)
    page = queries.list_identities(filters, before=before)
    next_url = None
    if page.next_before:
        query = urlencode({**filters.as_query(), "before": str(page.next_before)})
        next_url = request.build_absolute_uri(f"{reverse('identities:api-list')}?{query}")
    return JsonResponse(
        {
            "results": [identity_summary(request, identity) for identity in page.identities],
            "next": next_url,
        }
    )


# Creating needs viewing too: the answer is the new identity.
@endpoint("POST", VIEW_PERMISSION, ADD_PERMISSION)
def identity_create(request: HttpRequest) -> HttpResponse:
    try:
        body = read_json_object(request)
        form_class = form_class_for(body)
        form = form_class(data=form_data(form_class, body))
    except BadBody as exc:
        return invalid(exc.errors)
    if not form.is_valid():
        return invalid(form_errors(form))
    try:
        identity = services.create_identity(form.to_input(), actor=request.user)
    except services.DuplicateIdentityError as exc:
        return invalid({form.login_field: [str(exc)]})
    response = JsonResponse(
        identity_detail_data(request, identity, services.list_identity_jobs(identity)),
        status=201,
    )
    response["Location"] = api_url(request, identity.pk)
    return response


@endpoint("GET", VIEW_PERMISSION)
def identity_detail(request: HttpRequest, identity_id: int) -> HttpResponse:
    identity = queries.get_identity(identity_id)
    if identity is None:
        return error(404, f"no identity with id {identity_id}")
    return JsonResponse(
        identity_detail_data(request, identity, services.list_identity_jobs(identity))
    )
