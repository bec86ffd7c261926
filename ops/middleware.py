"""Answers /healthz before anything else, so a probe works by IP address and over plain HTTP."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from ops.views import healthz

HEALTHZ_PATHS = frozenset({"/healthz", "/healthz/"})


class HealthzMiddleware:
    """Load balancers and container probes call the container by its IP address (not a name in
    ALLOWED_HOSTS) over plain HTTP (SecurityMiddleware would redirect to HTTPS): both would fail
    a healthy web process. The check needs neither sessions nor users, so it runs here first."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info in HEALTHZ_PATHS:
            return healthz(request)
        return self.get_response(request)
