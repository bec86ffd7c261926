"""What every list and detail page does the same way."""

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from web.inputs import InvalidInputError, StrictIntegerField

# A query parameter the list does not understand is one more value the program cannot take.
InvalidFilterError = InvalidInputError


class QueryForm(forms.Form):
    """A page's query string (or any other set of parameters) as a declared form."""

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        """The cleaned values, or InvalidInputError naming the first parameter at fault."""
        form = cls(params)
        if form.is_valid():
            return form.cleaned_data
        name, errors = next(iter(form.errors.as_data().items()))
        parameter = "request" if name == NON_FIELD_ERRORS else name
        raise InvalidInputError(parameter, errors[0].messages[0])


class ChoiceParameter(forms.ChoiceField):
    """An optional parameter that must be one of the keys of ``choices``; the refusal lists
    them and never repeats the value sent."""

    def __init__(self, name: str, choices: Any, what: str) -> None:
        self.what = what
        super().__init__(required=False, choices=choices, label=name)

    def validate(self, value: Any) -> None:
        if value and not self.valid_value(value):
            choices: Any = self.choices
            keys = ", ".join(str(key) for key, _ in choices)
            raise forms.ValidationError(
                f"Unknown {self.what}; expected one of: {keys}", code="invalid_choice"
            )


def choice_parameter(name: str, keys: Any, what: str) -> ChoiceParameter:
    """``keys`` is a list of keys, or a callable returning (key, label) pairs when the choices
    can change while the program runs (registered job types)."""
    return ChoiceParameter(name, keys if callable(keys) else [(key, key) for key in keys], what)


def id_parameter(name: str, what: str) -> StrictIntegerField:
    """An optional parameter holding the id of one ``what`` ("platform", "policy", …)."""
    return StrictIntegerField(
        required=False, label=name, error_messages={"invalid": f"{name} must be a {what} id"}
    )


class CursorForm(QueryForm):
    """The keyset cursor ``before``: the id of the last row shown."""

    before = StrictIntegerField(required=False, label="before")


def bad_request(request: HttpRequest, exc: InvalidInputError) -> HttpResponse:
    """The 400 page naming the parameter at fault; a template, so the value is escaped."""
    return render(request, "400.html", {"error": exc}, status=400)


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
    try:
        before: int | None = CursorForm.parse(params)["before"]
    except InvalidInputError:
        raise InvalidInputError("before", f"before must be a positive {what} id") from None
    return before


def list_url(route: str, query: Mapping[str, str], *, before: object | None = None) -> str:
    """A list page's URL keeping its filters, and the keyset cursor when paging on."""
    params = dict(query)
    if before is not None:
        params["before"] = str(before)
    url = reverse(route)
    return f"{url}?{urlencode(params)}" if params else url
