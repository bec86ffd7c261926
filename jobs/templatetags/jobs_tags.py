"""Template helpers for the jobs pages."""

import json
from datetime import datetime
from typing import Any

from django import template
from django.contrib.contenttypes.models import ContentType
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timezone import localtime

register = template.Library()


@register.simple_tag
def timestamp(at: datetime | None) -> SafeString | str:
    """A <time> element; one Python call instead of a template include and three filters,
    which made up half the render time of a 50-row page."""
    if at is None:
        return "—"
    at = localtime(at)
    iso = at.isoformat()
    return format_html(
        '<time datetime="{}" title="{}">{}</time>', iso, iso, at.strftime("%Y-%m-%d %H:%M:%S")
    )


@register.simple_tag
def countdown(at: datetime | None) -> SafeString | str:
    """ "in 38 s" until ``at``, counted down in the browser by static/js/app.js."""
    if at is None:
        return "—"
    seconds = round((at - timezone.now()).total_seconds())
    text = f"in {seconds} s" if seconds > 0 else "due now"
    return format_html(
        '<span class="countdown" data-countdown-to="{}">{}</span>', at.isoformat(), text
    )


@register.simple_tag
def subject_link(subject: dict[str, Any]) -> SafeString | str:
    """The job's subject by its label, linked to its page when its model has one."""
    label = str(subject.get("label") or "—")
    kind, pk = subject.get("type"), subject.get("id")
    if not kind or not pk:
        return label
    app_label, model = str(kind).split(".", 1)
    try:
        model_class = ContentType.objects.get_by_natural_key(app_label, model).model_class()
    except ContentType.DoesNotExist:
        return label
    found = model_class._default_manager.filter(pk=pk).first() if model_class else None
    if found is None or not hasattr(found, "get_absolute_url"):
        return label
    return format_html('<a href="{}">{}</a>', found.get_absolute_url(), label)


@register.simple_tag
def parameters(params: Any) -> list[tuple[str, str]]:
    """A job's input as (name, value) rows; a value that is not text is shown as JSON."""
    if not isinstance(params, dict):
        return [("value", json.dumps(params, cls=DjangoJSONEncoder))]
    return [
        (str(name), value if isinstance(value, str) else json.dumps(value, cls=DjangoJSONEncoder))
        for name, value in sorted(params.items())
    ]
