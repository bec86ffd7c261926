"""Endpoints whose body a page form already validates: the JSON object becomes the form's
data (same field names), the form's errors become the problem's ``errors``, and the
document describes the body from the form's fields. One set of rules for page and API."""

import json
from typing import Any

from django import forms
from django.http import HttpRequest

from web.api.problems import ApiError
from web.inputs import InvalidInputError, load_json

MAX_BODY_BYTES = 256 * 1024


def read_object(request: HttpRequest) -> dict[str, Any]:
    if len(request.body) > MAX_BODY_BYTES:
        message = f"The body is larger than {MAX_BODY_BYTES // 1024} KB."
        raise ApiError(400, message, {"body": [message]})
    try:
        body = load_json(request.body or b"{}")
    except InvalidInputError as exc:
        raise ApiError(400, exc.message, {"body": [exc.message]}) from None
    if not isinstance(body, dict):
        raise ApiError(400, "The body must be a JSON object.", {"body": ["must be an object"]})
    return body


def _kinds(field: forms.Field, name: str, objects: tuple[str, ...]) -> list[str]:
    """The JSON types a form field takes over the API (documented and enforced alike)."""
    kinds = ["string"]
    if isinstance(field, forms.IntegerField | forms.ModelChoiceField):
        kinds = ["integer", "string"]
    if isinstance(field, forms.BooleanField):
        kinds = ["boolean"]
    if name in objects:
        kinds.append("object")
    if not field.required:
        kinds.append("null")
    return kinds


JSON_KINDS: dict[type, str] = {str: "string", int: "integer", bool: "boolean", dict: "object"}


def bind(
    form_class: Any, body: dict[str, Any], *, objects: tuple[str, ...] = (), **kwargs: Any
) -> Any:
    """The form bound to a JSON body and validated; a 400 problem naming each field
    otherwise. An object field (a service-account key) reaches the form as JSON text."""
    fields = form_class.base_fields
    errors: dict[str, list[str]] = {}
    data: dict[str, Any] = {}
    for name, value in body.items():
        if name not in fields:
            errors[name] = [f"Unknown field. Expected: {', '.join(fields)}."]
            continue
        kinds = _kinds(fields[name], name, objects)
        kind = "null" if value is None else JSON_KINDS.get(type(value), "")
        if kind not in kinds:
            errors[name] = [f"Must be {' or '.join(kinds)}."]
        elif kind == "object":
            data[name] = json.dumps(value)
        elif kind == "boolean":
            data[name] = "on" if value else ""
        elif kind != "null":
            data[name] = value
    if errors:
        raise ApiError(400, "invalid body: see errors", errors)
    form = form_class(data=data, **kwargs)
    if not form.is_valid():
        errors = {
            field: [item["message"] for item in items]
            for field, items in form.errors.get_json_data().items()
        }
        raise ApiError(400, "invalid body: see errors", errors)
    return form


def body_schema(form_class: Any, *, objects: tuple[str, ...] = ()) -> dict[str, Any]:
    """The openapi_extra describing a JSON body with the form's fields."""
    properties: dict[str, Any] = {}
    for name, field in form_class.base_fields.items():
        kinds = _kinds(field, name, objects)
        described: dict[str, Any] = {}
        if field.help_text:
            described["description"] = str(field.help_text)
        choices = getattr(field, "choices", None)
        if choices and not isinstance(field, forms.ModelChoiceField):
            described["enum"] = [key for key, _ in choices if key != ""] + (
                [] if field.required else [None, ""]
            )
        properties[name] = {"type": kinds, **described}
    required = [name for name, field in form_class.base_fields.items() if field.required]
    schema = {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
