"""The rules every piece of outside input obeys, for page forms and API schemas alike.

Each ``check_*`` function takes the raw value and the name of the field or parameter it came
from, and returns the value as the program may use it or raises ``InvalidInputError`` naming that
field. Page forms use them through the form fields below; the API's schemas wrap the same
functions, so a value means the same on a page and over the API.
"""

import datetime as dt
import json
import re
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

# PostgreSQL's bigint, the widest integer column we have; ids and cursors live inside it.
MAX_INTEGER = 2**63 - 1
# Far enough either way for any real date, and far enough from Python's datetime.min/max that
# a time-zone shift of a whole day can never overflow.
EARLIEST = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(9998, 12, 31, tzinfo=dt.UTC)
MAX_JSON_DEPTH = 32
MAX_TEXT_LENGTH = 10_000

_ASCII_INTEGER = re.compile(r"-?[0-9]{1,19}")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# C0 controls and DEL: never wanted in a single line (a name, an email, a filter).
_LINE_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")
# Lone UTF-16 surrogates decode from JSON ("\ud800") but no UTF-8 database can store them.
_SURROGATES = re.compile(r"[\ud800-\udfff]")


class InvalidInputError(ValueError):
    """A value from outside that the program cannot represent; ``parameter`` names where it
    came from so the 400 can say which field or parameter to fix."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.message = message


def check_integer(
    raw: object, parameter: str, *, minimum: int = 1, maximum: int = MAX_INTEGER
) -> int:
    """A whole number written in ASCII digits, within [minimum, maximum]."""
    if isinstance(raw, bool):
        raise InvalidInputError(parameter, f"{parameter} must be a whole number")
    if isinstance(raw, int):
        value = raw
    else:
        text = str(raw).strip()
        if not _ASCII_INTEGER.fullmatch(text):
            raise InvalidInputError(parameter, f"{parameter} must be a whole number")
        value = int(text)
    if not minimum <= value <= maximum:
        raise InvalidInputError(parameter, f"{parameter} must be between {minimum} and {maximum}")
    return value


def check_text(
    raw: str, parameter: str, *, single_line: bool = True, max_length: int = MAX_TEXT_LENGTH
) -> str:
    """Text a database can store: no NUL, no lone surrogate, not longer than ``max_length``;
    a single line also refuses every other control character (newline, tab, …)."""
    if "\x00" in raw:
        raise InvalidInputError(parameter, f"{parameter} must not contain a NUL character")
    if _SURROGATES.search(raw):
        raise InvalidInputError(parameter, f"{parameter} is not valid Unicode text")
    if single_line and _LINE_CONTROLS.search(raw):
        raise InvalidInputError(
            parameter, f"{parameter} must be a single line without control characters"
        )
    if len(raw) > max_length:
        raise InvalidInputError(parameter, f"{parameter} must be at most {max_length} characters")
    return raw


def check_datetime(raw: object, parameter: str) -> dt.datetime:
    """An ISO 8601 date or date-time (naive ones are in the current time zone) between
    1900-01-01 and 9998-12-31."""
    if isinstance(raw, dt.datetime):
        moment: dt.datetime | None = raw
    else:
        text = check_text(str(raw).strip(), parameter, max_length=64)
        try:
            moment = parse_datetime(text)
            if moment is None:
                day = parse_date(text)
                moment = dt.datetime.combine(day, dt.time.min) if day else None
        except (ValueError, OverflowError):
            moment = None
    if moment is None:
        raise InvalidInputError(
            parameter, f"{parameter} must be an ISO 8601 date or date-time, e.g. 2026-01-31"
        )
    try:
        if timezone.is_naive(moment):
            moment = timezone.make_aware(moment)
        in_range = EARLIEST <= moment <= LATEST
    except (ValueError, OverflowError):
        in_range = False
    if not in_range:
        raise InvalidInputError(parameter, f"{parameter} must be between 1900-01-01 and 9998-12-31")
    return moment


def check_date(raw: object, parameter: str) -> dt.date:
    """A day written YYYY-MM-DD between 1900-01-01 and 9998-12-31."""
    if isinstance(raw, dt.date) and not isinstance(raw, dt.datetime):
        day: dt.date | None = raw
    else:
        text = check_text(str(raw).strip(), parameter, max_length=10)
        try:
            day = dt.date.fromisoformat(text) if _ISO_DATE.fullmatch(text) else None
        except ValueError:  # 2025-02-30
            day = None
    if day is None:
        raise InvalidInputError(parameter, f"{parameter} must be a date like 2025-01-31")
    if not EARLIEST.date() <= day <= LATEST.date():
        raise InvalidInputError(parameter, f"{parameter} must be between 1900-01-01 and 9998-12-31")
    return day


def json_depth(value: Any) -> int:
    """How deeply lists and objects nest in an already parsed JSON value (iteratively)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in item)
    return deepest


def load_json(
    body: bytes | str, parameter: str = "body", *, max_depth: int = MAX_JSON_DEPTH
) -> Any:
    """Parse a JSON document, refusing malformed text and nesting deeper than ``max_depth``."""
    try:
        value = json.loads(body)
    except RecursionError:
        raise InvalidInputError(
            parameter, f"{parameter} nests deeper than {max_depth} levels"
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInputError(parameter, f"{parameter} is not valid JSON: {exc}") from None
    if json_depth(value) > max_depth:
        raise InvalidInputError(parameter, f"{parameter} nests deeper than {max_depth} levels")
    return value


def _as_validation_error(exc: InvalidInputError) -> forms.ValidationError:
    return forms.ValidationError(exc.message, code="invalid")


class StrictIntegerField(forms.Field):
    """A whole number in ASCII digits within a range (bigint by default)."""

    def __init__(self, *, min_value: int = 1, max_value: int = MAX_INTEGER, **kwargs: Any):
        self.min_value = min_value
        self.max_value = max_value
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> int | None:
        if value in self.empty_values:
            return None
        try:
            return check_integer(
                value, str(self.label or "value"), minimum=self.min_value, maximum=self.max_value
            )
        except InvalidInputError as exc:
            # A form may say what the number is ("platform must be a platform id").
            message = self.error_messages.get("invalid", exc.message)
            raise forms.ValidationError(message, code="invalid") from None


class SingleLineCharField(forms.CharField):
    """Text on one line: no control characters, no lone surrogates."""

    def to_python(self, value: Any) -> str:
        text = str(super().to_python(value))
        try:
            return check_text(
                text, str(self.label or "This field"), max_length=self.max_length or MAX_TEXT_LENGTH
            )
        except InvalidInputError as exc:
            raise _as_validation_error(exc) from None


class BoundedDateTimeField(forms.Field):
    """An ISO 8601 date or date-time within the range every part of the stack can hold."""

    def to_python(self, value: Any) -> dt.datetime | None:
        if value in self.empty_values:
            return None
        try:
            return check_datetime(value, str(self.label or "value"))
        except InvalidInputError as exc:
            raise _as_validation_error(exc) from None


class BoundedDateField(forms.Field):
    """A day (YYYY-MM-DD) within the range every part of the stack can hold."""

    def to_python(self, value: Any) -> dt.date | None:
        if value in self.empty_values:
            return None
        try:
            return check_date(value, str(self.label or "value"))
        except InvalidInputError as exc:
            raise _as_validation_error(exc) from None
