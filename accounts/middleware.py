"""Authenticates API requests that carry ``Authorization: Bearer <token>``."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

from accounts.models import ApiToken, hash_token


class ApiTokenMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer ") and request.path.startswith("/api/"):
            token = (
                ApiToken.objects.select_related("user")
                .filter(token_hash=hash_token(header.removeprefix("Bearer ").strip()))
                .first()
            )
            if token is None or not token.user.is_active:
                return JsonResponse({"error": "invalid API token"}, status=401)
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
            request.user = token.user
            # A bearer token is not sent by browsers on their own, so CSRF cannot forge it.
            request._dont_enforce_csrf_checks = True  # type: ignore[attr-defined]
        return self.get_response(request)
