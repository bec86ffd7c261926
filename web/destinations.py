"""A stored secret goes only where it was entered for: moving its destination asks for it again."""

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django import forms


def moved_fields(form: forms.ModelForm, names: Iterable[str]) -> list[str]:  # type: ignore[type-arg]
    """The destination fields (URLs, hosts) the form changes on a saved instance."""
    if not form.instance.pk:
        return []
    cleaned = form.cleaned_data
    return [
        name
        for name in names
        if name in cleaned and str(cleaned[name] or "") != str(getattr(form.instance, name) or "")
    ]


def require_secret_again(
    form: forms.ModelForm,  # type: ignore[type-arg]
    secret_field: str,
    *,
    destinations: Iterable[str],
    has_stored_secret: bool,
) -> None:
    """Refuse a change of destination that keeps the stored secret: the next job would send
    it, or a token made with it, to the new address."""
    moved = moved_fields(form, destinations)
    if moved and has_stored_secret and not form.cleaned_data.get(secret_field):
        labels = " and ".join(str(form.fields[name].label or name) for name in moved)
        form.add_error(
            secret_field,
            f"Changing the {labels} would send the stored secret there: enter it again.",
        )


def without_userinfo(url: str) -> str:
    """A URL as the trail may show it: without a user or password before the host."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host))


def describe_moves(stored: Any, fields: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """The trail's detail for destinations that change: {"moved": {"api_endpoint": {"from":
    old, "to": new}}}, or nothing when none does."""
    moves = {
        name: {
            "from": without_userinfo(str(getattr(stored, name) or "")),
            "to": without_userinfo(str(fields[name] or "")),
        }
        for name in names
        if name in fields and str(fields[name] or "") != str(getattr(stored, name) or "")
    }
    return {"moved": moves} if moves else {}
