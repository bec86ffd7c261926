"""Template tags for the sign-in page."""

from django import template

from sso import services

register = template.Library()


@register.simple_tag
def sso_sign_in_available() -> bool:
    """Whether single sign-on is on and configured, so the page offers it."""
    return services.is_sso_ready()
