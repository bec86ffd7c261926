"""The violations API (/api/v1/violations/): list with filters, approve, dismiss and retry a
failed remediation; and policies' create and edit."""

from datetime import datetime
from typing import Any

from django.http import HttpRequest
from ninja import Query, Router, Schema, Status
from pydantic import Field

from policies import queries, services
from policies.forms import PolicyForm
from policies.models import Policy, Violation, ViolationStatus
from web.api import forms as api_forms
from web.api.auth import allowed
from web.api.paging import BEFORE_DESCRIPTION, as_params, next_url
from web.api.problems import ApiError, Problem, not_found
from web.api.schemas import Out
from web.api.types import Id

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


router = Router(tags=["policies"])
ERRORS: dict[int, Any] = {400: Problem, 401: Problem, 403: Problem}


class PolicyRef(Out):
    id: int
    name: str


class ViolationOut(Out):
    id: int
    policy: PolicyRef
    kind: str
    subject_kind: str
    subject_id: str
    subject_label: str
    evidence: Any
    status: ViolationStatus
    opened_at: datetime
    closed_at: datetime | None
    remediation_job_id: int | None
    outcome: str
    decision: str
    decided_by: str | None
    decided_at: datetime | None


class ViolationPage(Out):
    results: list[ViolationOut]
    next: str | None


class ViolationQuery(Schema):
    status: ViolationStatus | None = None
    policy: Id | None = Field(None, description="A policy id")
    before: Id | None = Field(None, description=BEFORE_DESCRIPTION)


@router.get("violations/", response={200: ViolationPage, **ERRORS}, auth=allowed(VIEW_PERMISSION))
def list_violations(request: HttpRequest, query: Query[ViolationQuery]) -> dict[str, Any]:
    """Policy violations newest first."""
    filters = queries.parse_filters(as_params(query, "before"))
    violations, next_before = queries.list_violations(filters, before=query.before)
    return {
        "results": [violation_data(v) for v in violations],
        "next": next_url(request, "policies:api-list", filters.as_query(), next_before),
    }


def _decide(violation_id: int, request: HttpRequest, decision: str) -> dict[str, Any]:
    violation = queries.get_violation(violation_id)
    if violation is None:
        raise not_found("violation", violation_id)
    try:
        if decision == "approve":
            services.approve_violation(violation, actor=request.user)
        else:
            services.dismiss_violation(violation, actor=request.user)
    except services.DecisionRefused as exc:
        raise ApiError(409, str(exc)) from None
    violation.refresh_from_db()
    return violation_data(violation)


DECIDED: dict[int, Any] = {200: ViolationOut, 404: Problem, 409: Problem, **ERRORS}


@router.post(
    "violations/{int:violation_id}/approve/", response=DECIDED, auth=allowed(DECIDE_PERMISSION)
)
def approve_violation(request: HttpRequest, violation_id: Id) -> dict[str, Any]:
    """Approve the remediation of an open violation (a job carries it out)."""
    return _decide(violation_id, request, "approve")


@router.post(
    "violations/{int:violation_id}/dismiss/", response=DECIDED, auth=allowed(DECIDE_PERMISSION)
)
def dismiss_violation(request: HttpRequest, violation_id: Id) -> dict[str, Any]:
    """Dismiss an open violation."""
    return _decide(violation_id, request, "dismiss")


@router.post(
    "violations/{int:violation_id}/retry/", response=DECIDED, auth=allowed(DECIDE_PERMISSION)
)
def retry_remediation(request: HttpRequest, violation_id: Id) -> dict[str, Any]:
    """Retry the failed remediation of a violation in ``remediation_failed``."""
    violation = queries.get_violation(violation_id)
    if violation is None:
        raise not_found("violation", violation_id)
    try:
        services.retry_remediation(violation, actor=request.user)
    except services.DecisionRefused as exc:
        raise ApiError(409, str(exc)) from None
    violation.refresh_from_db()
    return violation_data(violation)


# --- policies (the Policies page's create and edit) -----------------------------------------


class PolicyOut(Out):
    id: int
    name: str
    kind: str
    platform: int
    parameters: Any
    action: str
    mode: str
    enabled: bool
    created_at: datetime


POLICY_BODY = api_forms.body_schema(PolicyForm)


def policy_data(policy: Policy) -> dict[str, Any]:
    return {
        "id": policy.pk,
        "name": policy.name,
        "kind": policy.kind,
        "platform": policy.platform_id,
        "parameters": policy.parameters,
        "action": policy.action,
        "mode": policy.mode,
        "enabled": policy.enabled,
        "created_at": policy.created_at,
    }


def save(request: HttpRequest, policy: Policy | None) -> Policy:
    form = api_forms.bind(PolicyForm, api_forms.read_object(request), instance=policy)
    fields = {name: form.cleaned_data[name] for name in PolicyForm.Meta.fields}
    return services.save_policy(
        policy, actor=request.user, parameters=form.instance.parameters, **fields
    )


@router.post(
    "policies/",
    response={201: PolicyOut, **ERRORS},
    auth=allowed("policies.add_policy"),
    openapi_extra=POLICY_BODY,
)
def create_policy(request: HttpRequest) -> Status[dict[str, Any]]:
    """Create a policy, as Policies > New does."""
    return Status(201, policy_data(save(request, None)))


@router.put(
    "policies/{int:policy_id}/",
    response={200: PolicyOut, 404: Problem, **ERRORS},
    auth=allowed("policies.change_policy"),
    openapi_extra=POLICY_BODY,
)
def update_policy(request: HttpRequest, policy_id: Id) -> dict[str, Any]:
    """Save a policy, as its edit page does (every field is sent)."""
    policy = Policy.objects.filter(pk=policy_id).first()
    if policy is None:
        raise not_found("policy", policy_id)
    return policy_data(save(request, policy))
