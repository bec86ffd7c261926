"""What every list and detail page does the same way."""

from collections.abc import Mapping
from urllib.parse import urlencode

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.urls import reverse


class InvalidFilterError(ValueError):
    """A query parameter has a value the list does not understand (shown as a 400)."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.message = message


def require_permissions(request: HttpRequest, *perms: str) -> None:
    if not request.user.has_perms(perms):
        raise PermissionDenied


def wants_fragment(request: HttpRequest) -> bool:
    """An htmx refresh asks for the live fragment only; a history restore needs the whole page."""
    return (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-History-Restore-Request") != "true"
    )


def parse_id_cursor(params: Mapping[str, str], what: str) -> int | None:
    """The keyset cursor ``before`` (the id of the last row shown); anything but a positive
    whole number is an InvalidFilterError naming the parameter."""
    raw = params.get("before", "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) <= 0:
        raise InvalidFilterError("before", f"before must be a positive {what} id, got {raw!r}")
    return int(raw)


def list_url(route: str, query: Mapping[str, str], *, before: object | None = None) -> str:
    """A list page's URL keeping its filters, and the keyset cursor when paging on."""
    params = dict(query)
    if before is not None:
        params["before"] = str(before)
    url = reverse(route)
    return f"{url}?{urlencode(params)}" if params else url
