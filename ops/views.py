"""/healthz (open, minimal) and /metrics (bearer token): no sessions, no templates."""

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from ops import health, metrics

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@never_cache
@require_safe
def healthz(request: HttpRequest) -> HttpResponse:
    """503 "fail" when web, database or broker is down; 200 "degraded" with the reasons when
    they answer but jobs wait too long or beat is silent (this web process can still serve);
    200 "ok" otherwise. The body says which check."""
    ok, checks = health.run_checks()
    if not ok:
        return JsonResponse({"status": "fail", "checks": checks}, status=503)
    reasons = health.degradations()
    body: dict[str, object] = {"status": "degraded" if reasons else "ok", "checks": checks}
    if reasons:
        body["degraded"] = reasons
    return JsonResponse(body)


@never_cache
@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus scrape target; needs "Authorization: Bearer <ACCESSHIVE_METRICS_TOKEN>"."""
    token = settings.METRICS_TOKEN
    if not token:
        return HttpResponse(
            "metrics are off: set ACCESSHIVE_METRICS_TOKEN\n", status=404, content_type="text/plain"
        )
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.encode()
    ):
        response = HttpResponse(
            "a valid bearer token is required\n", status=401, content_type="text/plain"
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(metrics.exposition(), content_type=PROMETHEUS_CONTENT_TYPE)
