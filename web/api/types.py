"""web.inputs' rules as pydantic types, so a value means the same on a page and over the API."""

import datetime as dt
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from web.inputs import (
    MAX_INTEGER,
    InvalidInputError,
    check_datetime,
    check_integer,
    check_text,
)

# The control characters check_text refuses in a single line, as a JSON-schema pattern.
SINGLE_LINE_PATTERN = "^[^\\u0000-\\u001f\\u007f]*$"


def _refusal(exc: InvalidInputError) -> PydanticCustomError:
    return PydanticCustomError("invalid_input", exc.message)


def _positive_id(raw: Any) -> int:
    try:
        return check_integer(raw, "value")
    except InvalidInputError as exc:
        raise _refusal(exc) from None


def _single_line(raw: Any) -> str:
    if not isinstance(raw, str):
        raise PydanticCustomError("invalid_input", "value must be text")
    try:
        return check_text(raw.strip(), "value", max_length=255)
    except InvalidInputError as exc:
        raise _refusal(exc) from None


def _moment(raw: Any) -> dt.datetime:
    try:
        return check_datetime(raw, "value")
    except InvalidInputError as exc:
        raise _refusal(exc) from None


# An id or keyset cursor: ASCII digits, 1 up to PostgreSQL's bigint.
Id = Annotated[int, BeforeValidator(_positive_id), Field(ge=1, le=MAX_INTEGER)]
# A filter or short field: one line, no control characters, at most 255 characters.
Line = Annotated[
    str, BeforeValidator(_single_line), Field(max_length=255, pattern=SINGLE_LINE_PATTERN)
]
# An ISO 8601 date or date-time between 1900-01-01 and 9998-12-31.
Moment = Annotated[
    dt.datetime,
    BeforeValidator(_moment),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "description": "ISO 8601 date or date-time between 1900-01-01 and 9998-12-31",
        }
    ),
]


def one_of(values: list[str], description: str = "") -> Any:
    """An output field holding one of ``values``, documented inline (a model's nested
    ``Status`` enums would otherwise share one component name)."""
    schema: dict[str, Any] = {"type": "string", "enum": list(values)}
    if description:
        schema["description"] = description
    return Annotated[str, WithJsonSchema(schema)]


def _day(raw: Any) -> dt.date:
    if isinstance(raw, dt.date) and not isinstance(raw, dt.datetime):
        return raw
    text = raw if isinstance(raw, str) else ""
    try:
        if len(text) == 10:
            return dt.date.fromisoformat(text)
    except ValueError:
        pass
    raise PydanticCustomError("invalid_input", "must be a date like 2025-01-31")


# A calendar day written YYYY-MM-DD, between 1900-01-01 and 9998-12-31.
Day = Annotated[
    dt.date,
    BeforeValidator(_day),
    Field(ge=dt.date(1900, 1, 1), le=dt.date(9998, 12, 31)),
    WithJsonSchema({"type": "string", "format": "date", "description": "YYYY-MM-DD, 1900 to 9998"}),
]
