"""Settings > Users: who uses AccessHive, their roles, and changing a role (admins only)."""

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST, require_safe

from accounts import queries, services
from accounts.forms import ROLE_CHOICES, RoleForm
from accounts.roles import Role
from web.inputs import InvalidInputError
from web.pages import bad_request, require_permissions

# Only admins manage users, and seeing who holds which role is part of managing them.
MANAGE_PERMISSION = "accounts.change_userrole"


@require_safe
@login_required
def user_list(request: HttpRequest) -> HttpResponse:
    require_permissions(request, MANAGE_PERMISSION)
    context = {
        "page": queries.list_users(),
        "roles": ROLE_CHOICES,
        "lockouts": queries.list_lockouts(),
    }
    return render(request, "accounts/user_list.html", {**context, "nav": "users"})


@require_POST
@login_required
def set_role(request: HttpRequest, user_id: int) -> HttpResponse:
    require_permissions(request, MANAGE_PERMISSION)
    user = get_object_or_404(get_user_model(), pk=user_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        expected = ", ".join(Role.values)
        message = f"Unknown role; expected one of: {expected}, or empty for none"
        return bad_request(request, InvalidInputError("role", message))
    role = form.cleaned_data["role"]
    name = user.get_username()
    try:
        changed = services.change_role(user, role, actor=request.user)
    except services.RoleChangeRefusedError as exc:
        messages.error(request, str(exc))
        return redirect("accounts:users")
    label = queries.role_label(role)
    if changed:
        messages.success(request, f"{name} now has the role: {label}")
    else:
        messages.info(request, f"{name} already has the role: {label}")
    if user.pk == request.user.pk and role != Role.ADMIN:
        # They no longer manage users; the list would only answer 403.
        return redirect("/")
    return redirect("accounts:users")


@require_POST
@login_required
def unlock(request: HttpRequest, attempt_id: int) -> HttpResponse:
    require_permissions(request, MANAGE_PERMISSION)
    attempt = queries.get_lockout(attempt_id)
    if attempt is None:
        raise Http404("No such lockout")
    services.unlock(attempt, actor=request.user)
    messages.success(request, f"Unlocked {attempt.username} from {attempt.ip_address}")
    return redirect("accounts:users")


# Anyone with a role may hold API tokens, so anyone with a role sees and revokes their own.
HOLD_TOKENS_PERMISSION = "jobs.view_job"


@require_safe
@login_required
def api_token_list(request: HttpRequest) -> HttpResponse:
    require_permissions(request, HOLD_TOKENS_PERMISSION)
    everyone = request.user.has_perm(MANAGE_PERMISSION)
    context = {
        "tokens": queries.list_api_tokens(request.user, everyone=everyone),
        "everyone": everyone,
        "nav": "tokens",
    }
    return render(request, "accounts/api_token_list.html", context)


@require_POST
@login_required
def revoke_api_token(request: HttpRequest, token_id: int) -> HttpResponse:
    require_permissions(request, HOLD_TOKENS_PERMISSION)
    token = queries.get_api_token(token_id)
    mine = token is not None and token.user_id == request.user.pk
    if token is None or not (mine or request.user.has_perm(MANAGE_PERMISSION)):
        raise Http404("No such API token")
    if services.revoke_api_token(token, actor=request.user):
        messages.success(request, f"Revoked the API token {token.name} ({token.prefix}…)")
    else:
        messages.info(request, f"The API token {token.name} was revoked already")
    return redirect("accounts:tokens")
