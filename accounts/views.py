"""Settings > Users: who uses AccessHive, their roles, and changing a role (admins only)."""

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
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
    context = {"page": queries.list_users(), "roles": ROLE_CHOICES}
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
