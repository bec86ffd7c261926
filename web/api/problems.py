"""One shape for every refusal under /api/: RFC 9457 problem details
(``application/problem+json``: type, title, status, detail, and ``errors`` per field)."""

import json
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from django.core.exceptions import (
    BadRequest,
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
)
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, UnreadablePostError
from django.http.multipartparser import MultiPartParserError
from ninja.errors import AuthenticationError, HttpError, ValidationError
from pydantic import Field

from web.api.schemas import Out
from web.inputs import InvalidInputError
from web.pages import InvalidFilterError

logger = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"
API_PREFIX = "/api/"


class Problem(Out):
    """RFC 9457 problem details."""

    type: str = Field("about:blank", description="Always about:blank: the status says it all")
    title: str = Field(description="The HTTP status phrase")
    status: int
    detail: str = Field(description="What went wrong, for a person to read")
    errors: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Messages per body field or query/path parameter that was refused",
    )


class ApiError(Exception):
    """A refusal an endpoint answers with; turned into a problem response."""

    def __init__(
        self,
        status: int,
        detail: str,
        errors: dict[str, list[str]] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or {}
        # RFC 9457 extension members (e.g. the job a refused retry left as it was).
        self.extra = extra


def problem(
    status: int,
    detail: str,
    errors: dict[str, list[str]] | None = None,
    extra: dict[str, Any] | None = None,
    **headers: str,
) -> HttpResponse:
    body = {
        **(extra or {}),
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "errors": errors or {},
    }
    content = json.dumps(body, cls=DjangoJSONEncoder)
    response = HttpResponse(content, status=status, content_type=MEDIA_TYPE)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def not_found(what: str, key: object) -> ApiError:
    return ApiError(404, f"no {what} with id {key}")


def _field_of(loc: tuple[Any, ...]) -> str:
    """The field or parameter an error is about: ("query", "before") → "before",
    ("body", "body", "limit") → "limit" (the second part names the view's body argument)."""
    parts = loc[2:] if loc[0] == "body" and len(loc) > 2 else loc[1:]
    names = [str(part) for part in parts if not isinstance(part, int)] or [str(loc[0])]
    return ".".join(names)


def validation_problem(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    errors: dict[str, list[str]] = {}
    for error in exc.errors:
        errors.setdefault(_field_of(tuple(error.get("loc", ("body",)))), []).append(
            str(error.get("msg", "invalid value"))
        )
    names = ", ".join(sorted(errors))
    return problem(400, f"invalid input: {names}", errors)


def unauthenticated(request: HttpRequest, exc: Exception) -> HttpResponse:
    return problem(
        401,
        "authentication required: sign in or send a bearer token",
        WWW_Authenticate='Bearer realm="api"',
    )


def server_error(request: HttpRequest, exc: Exception) -> HttpResponse:
    if isinstance(exc, OperationalError | InterfaceError):
        logger.warning("api.database_unavailable", extra={"path": request.path})
        return problem(
            503,
            "the database is unavailable; nothing was changed unless a repeat of this request "
            "with the same Idempotency-Key says so. Try again shortly.",
            Retry_After="5",
        )
    logger.exception("api.error", extra={"path": request.path})
    return problem(500, "internal error; it has been logged")


HANDLERS: dict[type[Exception], Callable[[HttpRequest, Any], HttpResponse]] = {
    ApiError: lambda request, exc: problem(exc.status, exc.detail, exc.errors, exc.extra),
    ValidationError: validation_problem,
    InvalidInputError: lambda request, exc: problem(
        400, exc.message, {exc.parameter: [exc.message]}
    ),
    InvalidFilterError: lambda request, exc: problem(
        400, exc.message, {exc.parameter: [exc.message]}
    ),
    AuthenticationError: unauthenticated,
    PermissionDenied: lambda request, exc: problem(403, "permission denied"),
    Http404: lambda request, exc: problem(404, "not found"),
    HttpError: lambda request, exc: problem(exc.status_code, str(exc)),
    # A body Django cannot parse (multipart without a boundary, too many fields, cut short).
    MultiPartParserError: lambda request, exc: problem(400, f"unreadable body: {exc}"),
    TooManyFieldsSent: lambda request, exc: problem(400, "too many fields in the body"),
    RequestDataTooBig: lambda request, exc: problem(413, "the body is too large"),
    UnreadablePostError: lambda request, exc: problem(400, "the body was cut short"),
    BadRequest: lambda request, exc: problem(400, "bad request"),
    SuspiciousOperation: lambda request, exc: problem(400, "bad request"),
    DatabaseError: server_error,
    Exception: server_error,
}


def as_problem(response: HttpResponse) -> HttpResponse:
    """A refusal made outside the API's views (URL not found, method not allowed, the token
    middleware's ``{"error": …}``, a crash in a middleware) in the problem shape."""
    content_type = response.get("Content-Type", "")
    if response.status_code < 400 or content_type.startswith(MEDIA_TYPE):
        return response
    detail = HTTPStatus(response.status_code).phrase.lower()
    if content_type.startswith("application/json"):
        try:
            body = json.loads(response.content)
            detail = str(body["error"])
        except (ValueError, KeyError, TypeError):
            pass
    elif response.status_code == 404:
        detail = "no such API endpoint; see /api/v1/docs"
    elif response.status_code == 405:
        allowed = ", ".join(sorted(m.strip() for m in response.get("Allow", "").split(",")))
        detail = f"method not allowed; use {allowed or 'another method'}"
    replacement = problem(response.status_code, detail)
    for header in ("WWW-Authenticate", "Retry-After"):
        if header in response:
            replacement[header] = response[header]
    if "Allow" in response:
        # ninja lists a path's methods in set order; clients and tests want one order.
        replacement["Allow"] = ", ".join(sorted(m.strip() for m in response["Allow"].split(",")))
    return replacement


class ProblemDetailsMiddleware:
    """Under /api/, any error answer that is not yet a problem becomes one."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.path.startswith(API_PREFIX):
            return as_problem(response)
        return response


def server_error_view(request: HttpRequest) -> HttpResponse:
    """handler500: a problem under /api/, Django's own page elsewhere."""
    if request.path.startswith(API_PREFIX):
        return problem(500, "internal error; it has been logged")
    from django.views.defaults import server_error

    return server_error(request)
