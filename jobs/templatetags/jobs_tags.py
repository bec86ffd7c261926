"""Template helpers for the jobs pages."""

from datetime import datetime

from django import template
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
