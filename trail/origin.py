"""Where the current request came from (source IP and channel), for the audit trail.

Middleware sets it once per request so that services, which know the actor but not the
request, can record the trail inside their own transaction.
"""

import ipaddress
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest, HttpResponse


@dataclass(frozen=True)
class Origin:
    source: str
    ip: str | None = None


_current: ContextVar[Origin | None] = ContextVar("accesshive_trail_origin", default=None)


def current_origin() -> Origin | None:
    return _current.get()


@contextmanager
def acting_from(origin: Origin) -> Iterator[None]:
    token = _current.set(origin)
    try:
        yield
    finally:
        _current.reset(token)


def client_ip(request: HttpRequest) -> str | None:
    """REMOTE_ADDR, or with ACCESSHIVE_TRUSTED_PROXIES = n the address the nth proxy saw
    (X-Forwarded-For read from the right, so a client cannot forge it). Anything that is not
    an IP address (a proxy writing "unknown") is None: the trail's column takes addresses only,
    and an action must not fail over how it is recorded."""
    proxies = settings.TRUSTED_PROXIES
    if proxies:
        hops = [
            h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()
        ]
        if len(hops) >= proxies:
            return valid_ip(hops[-proxies])
    return valid_ip(request.META.get("REMOTE_ADDR") or "")


def valid_ip(raw: str) -> str | None:
    try:
        # Without an IPv6 zone ("%eth0"), which the database's address type does not take.
        return str(ipaddress.ip_address(raw.partition("%")[0]))
    except ValueError:
        return None


class RequestOriginMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        source = "api" if request.path.startswith("/api/") else "web"
        with acting_from(Origin(source=source, ip=client_ip(request))):
            return self.get_response(request)
