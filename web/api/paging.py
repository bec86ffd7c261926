"""Keyset paging as every list of the API describes it: ``results`` newest first, and
``next``, the URL of the following page (the same filters with ``before`` set), or null."""

import datetime as dt
from collections.abc import Mapping
from enum import Enum
from urllib.parse import urlencode

from django.http import HttpRequest
from django.urls import reverse
from pydantic import BaseModel

BEFORE_DESCRIPTION = (
    "Keyset cursor: the id of the last row of the previous page; the `next` URL carries it"
)


def next_url(
    request: HttpRequest, route: str, query: Mapping[str, str], before: object | None
) -> str | None:
    if before is None:
        return None
    params = urlencode({**query, "before": str(before)})
    return request.build_absolute_uri(f"{reverse(route)}?{params}")


def absolute(request: HttpRequest, route: str, *args: object) -> str:
    return request.build_absolute_uri(reverse(route, args=args))


def as_params(query: BaseModel, *exclude: str) -> dict[str, str]:
    """A typed query back as the plain strings the queries' parse_filters read; by then
    every value has passed web.inputs' rules."""
    params: dict[str, str] = {}
    for name, value in query.model_dump(by_alias=True, exclude_none=True).items():
        if name in exclude:
            continue
        if isinstance(value, dt.date):
            params[name] = value.isoformat()
        elif isinstance(value, Enum):
            params[name] = str(value.value)
        else:
            params[name] = str(value)
    return params
