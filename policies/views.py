"""Policy pages (list, create, edit) and the violations list with approve and dismiss."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_POST

from policies import queries, services
from policies.forms import PolicyForm
from policies.models import Policy, Violation, ViolationStatus
from web.pages import InvalidFilterError, bad_request, require_permissions, wants_fragment


@login_required
def policy_list(request: HttpRequest) -> HttpResponse:
    require_permissions(request, "policies.view_policy")
    policies = Policy.objects.select_related("platform")
    return render(request, "policies/policy_list.html", {"policies": policies, "nav": "policies"})


@login_required
def policy_edit(request: HttpRequest, policy_id: int | None = None) -> HttpResponse:
    policy = get_object_or_404(Policy, pk=policy_id) if policy_id else None
    require_permissions(request, "policies.change_policy" if policy else "policies.add_policy")
    form = PolicyForm(request.POST or None, instance=policy)
    if request.method == "POST" and form.is_valid():
        fields = {name: form.cleaned_data[name] for name in PolicyForm.Meta.fields}
        saved = services.save_policy(
            policy, actor=request.user, parameters=form.instance.parameters, **fields
        )
        messages.success(request, f"Saved policy {saved.name}.")
        return redirect("policies:list")
    return render(
        request, "policies/policy_form.html", {"form": form, "policy": policy, "nav": "policies"}
    )


@login_required
def violation_list(request: HttpRequest) -> HttpResponse:
    require_permissions(request, "policies.view_violation")
    try:
        filters = queries.parse_filters(request.GET)
        before = queries.parse_before(request.GET)
    except InvalidFilterError as exc:
        return bad_request(request, exc)
    violations, next_before = queries.list_violations(filters, before=before)
    template = "policies/violation_list.html"
    response = render(
        request,
        f"{template}#live" if wants_fragment(request) else template,
        {
            "violations": violations,
            "next_before": next_before,
            "filters": filters,
            "statuses": ViolationStatus.choices,
            "policies": Policy.objects.all(),
            "nav": "policies",
            # While one is remediating, the table refreshes itself (htmx), as Settings > Jobs.
            "remediating": any(v.status == ViolationStatus.REMEDIATING for v in violations),
            "refresh_url": request.get_full_path(),
        },
    )
    patch_vary_headers(response, ["HX-Request"])
    return response


@login_required
@require_POST
def violation_retry(request: HttpRequest, violation_id: int) -> HttpResponse:
    require_permissions(request, "policies.decide_violation")
    violation = get_object_or_404(Violation, pk=violation_id)
    try:
        job = services.retry_remediation(violation, actor=request.user)
        messages.success(request, f"Retrying remediation job {job.pk}.")
    except services.DecisionRefused as exc:
        messages.error(request, str(exc))
    return redirect("policies:violations")


@login_required
@require_POST
def violation_decide(request: HttpRequest, violation_id: int, decision: str) -> HttpResponse:
    require_permissions(request, "policies.decide_violation")
    violation = get_object_or_404(Violation, pk=violation_id)
    try:
        if decision == "approve":
            job = services.approve_violation(violation, actor=request.user)
            messages.success(request, f"Approved: remediation job {job.pk} started.")
        else:
            services.dismiss_violation(violation, actor=request.user)
            messages.success(request, f"Dismissed violation #{violation.pk}.")
    except services.DecisionRefused as exc:
        messages.error(request, str(exc))
    return redirect("policies:violations")
