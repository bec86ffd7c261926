"""{% pam_panel identity as pam %}: the sessions panel on an identity's page, whose view
belongs to the identities app and knows nothing about sessions."""

from typing import Any

from django import template

from identities.models import Identity
from pam import queries
from pam.forms import CheckOutForm

register = template.Library()


@register.simple_tag(takes_context=True)
def pam_panel(context: template.Context, identity: Identity) -> queries.IdentityPanel | None:
    request: Any = context.get("request")
    user = getattr(request, "user", None) or context.get("user")
    if user is None or not user.is_authenticated:
        return None
    return queries.get_identity_panel(identity, user)


@register.simple_tag
def pam_check_out_form() -> CheckOutForm:
    """The check-out form, drawn like every other form (ids pam-reason, pam-minutes)."""
    return CheckOutForm(auto_id="pam-%s")
