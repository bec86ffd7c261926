"""The violations JSON API (/api/v1/violations/): list with filters, approve and dismiss."""

from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse

from jobs.api import endpoint, error
from policies import queries, services
from policies.models import Violation
from web.pages import InvalidFilterError

VIEW_PERMISSION = "policies.view_violation"
DECIDE_PERMISSION = "policies.decide_violation"


def violation_data(violation: Violation) -> dict[str, Any]:
    return {
        "id": violation.pk,
        "policy": {"id": violation.policy_id, "name": violation.policy.name},
        "kind": violation.policy.kind,
        "subject_kind": violation.subject_kind,
        "subject_id": violation.subject_id,
        "subject_label": violation.subject_label,
        "evidence": violation.evidence,
        "status": violation.status,
        "opened_at": violation.opened_at,
        "closed_at": violation.closed_at,
        "remediation_job_id": violation.remediation_job_id,
        "outcome": violation.outcome,
        "decision": violation.decision,
        "decided_by": violation.decided_by.get_username() if violation.decided_by else None,
        "decided_at": violation.decided_at,
    }


@endpoint("GET", VIEW_PERMISSION)
def violation_list(request: HttpRequest) -> HttpResponse:
    try:
        filters = queries.parse_filters(request.GET)
        before = queries.parse_before(request.GET)
    except InvalidFilterError as exc:
        return error(400, exc.message, parameter=exc.parameter)
    violations, next_before = queries.list_violations(filters, before=before)
    next_url = None
    if next_before:
        query = urlencode({**filters.as_query(), "before": str(next_before)})
        next_url = request.build_absolute_uri(f"{reverse('policies:api-list')}?{query}")
    return JsonResponse({"results": [violation_data(v) for v in violations], "next": next_url})


def _decide(violation_id: int, request: HttpRequest, decision: str) -> HttpResponse:
    violation = queries.get_violation(violation_id)
    if violation is None:
        return error(404, f"no violation with id {violation_id}")
    try:
        if decision == "approve":
            services.approve_violation(violation, actor=request.user)
        else:
            services.dismiss_violation(violation, actor=request.user)
    except services.DecisionRefused as exc:
        return error(409, str(exc))
    violation.refresh_from_db()
    return JsonResponse(violation_data(violation))


@endpoint("POST", DECIDE_PERMISSION)
def violation_approve(request: HttpRequest, violation_id: int) -> HttpResponse:
    return _decide(violation_id, request, "approve")


@endpoint("POST", DECIDE_PERMISSION)
def violation_dismiss(request: HttpRequest, violation_id: int) -> HttpResponse:
    return _decide(violation_id, request, "dismiss")
