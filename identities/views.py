"""Identity, platform and identity-provider pages: parse, check permissions, call one service,
render. Secrets go from a form to a service and on to the vault; no page ever shows one."""

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_http_methods, require_safe

from identities import queries, services
from identities.forms import IDENTITY_FORMS, IdentityProviderForm, PlatformForm
from identities.handlers.common import rate_limit_label
from identities.models import (
    CREDENTIALS_ONLY_TYPES,
    Identity,
    IdentityProvider,
    IdentityStatus,
    IdentityType,
    Platform,
)
from web import pages
from web.pages import InvalidFilterError, require_permissions, wants_fragment

VIEW_IDENTITY = "identities.view_identity"
ADD_IDENTITY = "identities.add_identity"
VIEW_PLATFORM = "identities.view_platform"
ADD_PLATFORM = "identities.add_platform"
CHANGE_PLATFORM = "identities.change_platform"
VIEW_PROVIDER = "identities.view_identityprovider"
ADD_PROVIDER = "identities.add_identityprovider"
CHANGE_PROVIDER = "identities.change_identityprovider"

# What creating each type sets in motion, in one line, for the choose-type page.
TYPE_DESCRIPTIONS: dict[str, str] = {
    IdentityType.HUMAN_INTERACTIVE: (
        "A person: Google Workspace user + SSO user at the platform's identity provider "
        "(background jobs; only the SSO user on other platforms)."
    ),
    IdentityType.SHARED_CREDENTIAL_MANAGED: (
        "A shared Google Workspace account we create; its password goes to the vault "
        "(one background job)."
    ),
    IdentityType.SHARED_CREDENTIAL_EXTERNAL: (
        "A username and password that already exist elsewhere; instant: stored in the vault."
    ),
    IdentityType.SERVICE_ACCOUNT: (
        "A Google service account's JSON key, pasted or uploaded; instant: stored in the vault."
    ),
    IdentityType.API_KEY: "A named API key; instant: stored in the vault.",
    IdentityType.OAUTH_CLIENT: "An OAuth client id and secret; instant: stored in the vault.",
}


def render_live(
    request: HttpRequest, template: str, context: dict[str, Any], *, status: int = 200
) -> HttpResponse:
    """The whole page, or only its ``live`` partial when htmx refreshes it."""
    name = f"{template}#live" if wants_fragment(request) else template
    response = render(request, name, context, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


def list_url(filters: queries.IdentityFilters, *, before: int | None = None) -> str:
    return pages.list_url("identities:list", filters.as_query(), before=before)


# --- identities -----------------------------------------------------------------------------


@require_safe
@login_required
def identity_list(request: HttpRequest) -> HttpResponse:
    require_permissions(request, VIEW_IDENTITY)
    context: dict[str, Any] = {
        "nav": "identities",
        "statuses": IdentityStatus.choices,
        "types": IdentityType.choices,
        "platforms": queries.list_platforms(),
        "can_add": request.user.has_perm(ADD_IDENTITY),
    }
    try:
        filters = queries.parse_filters(request.GET)
        before = queries.parse_before(request.GET)
    except InvalidFilterError as exc:
        context.update(filters=queries.IdentityFilters(), filter_error=exc)
        return render(request, "identities/identity_list.html", context, status=400)
    page = queries.list_identities(filters, before=before)
    context.update(
        filters=filters,
        page=page,
        refresh_url=request.get_full_path(),
        newest_url=list_url(filters) if before is not None else None,
        next_url=list_url(filters, before=page.next_before) if page.next_before else None,
    )
    return render_live(request, "identities/identity_list.html", context)


@require_safe
@login_required
def identity_choose_type(request: HttpRequest) -> HttpResponse:
    require_permissions(request, VIEW_IDENTITY, ADD_IDENTITY)
    choices = [
        (key, label, TYPE_DESCRIPTIONS.get(key, ""))
        for key, label in IdentityType.choices
        if key in IDENTITY_FORMS
    ]
    return render(
        request, "identities/identity_choose_type.html", {"nav": "identities", "choices": choices}
    )


@require_http_methods(["GET", "HEAD", "POST"])
@login_required
def identity_create(request: HttpRequest, identity_type: str) -> HttpResponse:
    # Creating needs viewing too: the next page is the new identity's own.
    require_permissions(request, VIEW_IDENTITY, ADD_IDENTITY)
    form_class = IDENTITY_FORMS.get(identity_type)
    if form_class is None:
        raise Http404("No such identity type")
    if request.method == "POST":
        form = form_class(request.POST, request.FILES)
        if form.is_valid():
            try:
                identity = services.create_identity(form.to_input(), actor=request.user)
            except services.DuplicateIdentityError as exc:
                form.add_error(form.login_field, str(exc))
            else:
                messages.success(request, created_message(identity))
                return redirect("identities:detail", identity_id=identity.pk)
    else:
        form = form_class()
    context = {
        "nav": "identities",
        "form": form,
        "type_key": identity_type,
        "type_label": IdentityType(identity_type).label,
        "type_description": TYPE_DESCRIPTIONS.get(identity_type, ""),
    }
    return render(request, "identities/identity_form.html", context)


def created_message(identity: Identity) -> str:
    if identity.identity_type in CREDENTIALS_ONLY_TYPES:
        return f"Created {identity.login}; its credential is stored in the vault."
    return f"Created {identity.login}; provisioning has started."


@require_safe
@login_required
def identity_detail(request: HttpRequest, identity_id: int) -> HttpResponse:
    require_permissions(request, VIEW_IDENTITY)
    identity = queries.get_identity(identity_id)
    if identity is None:
        raise Http404("No such identity")
    context = {
        "nav": "identities",
        "identity": identity,
        "is_active": queries.is_active(identity),
        "credential_ref": queries.get_credential_ref(identity),
        "jobs": services.list_identity_jobs(identity),
    }
    return render_live(request, "identities/identity_detail.html", context)


# --- platforms ------------------------------------------------------------------------------


@require_safe
@login_required
def platform_list(request: HttpRequest) -> HttpResponse:
    require_permissions(request, VIEW_PLATFORM)
    context = {
        "nav": "platforms",
        "platforms": [
            (platform, rate_limit_label(platform)) for platform in queries.list_platforms()
        ],
        "can_add": request.user.has_perm(ADD_PLATFORM),
        "can_change": request.user.has_perm(CHANGE_PLATFORM),
    }
    return render(request, "identities/platform_list.html", context)


@require_http_methods(["GET", "HEAD", "POST"])
@login_required
def platform_create(request: HttpRequest) -> HttpResponse:
    require_permissions(request, ADD_PLATFORM)
    form = PlatformForm(request.POST) if request.method == "POST" else PlatformForm()
    if form.is_valid():
        fields = {name: form.cleaned_data[name] for name in PlatformForm.Meta.fields}
        key = form.cleaned_data["service_account_key"]
        platform = services.create_platform(service_account_key=key, actor=request.user, **fields)
        messages.success(request, f"Platform {platform.name} created.")
        return redirect("identities:platform-list")
    return render_platform_form(request, form, None)


@require_http_methods(["GET", "HEAD", "POST"])
@login_required
def platform_edit(request: HttpRequest, platform_id: int) -> HttpResponse:
    require_permissions(request, CHANGE_PLATFORM)
    platform = queries.get_platform(platform_id)
    if platform is None:
        raise Http404("No such platform")
    if request.method == "POST":
        form = PlatformForm(request.POST, instance=platform)
    else:
        form = PlatformForm(instance=platform)
    if form.is_valid():
        fields = {name: form.cleaned_data[name] for name in PlatformForm.Meta.fields}
        key = form.cleaned_data["service_account_key"]
        platform = services.update_platform(
            platform, service_account_key=key, actor=request.user, **fields
        )
        messages.success(request, f"Platform {platform.name} saved.")
        return redirect("identities:platform-list")
    return render_platform_form(request, form, platform)


def render_platform_form(
    request: HttpRequest, form: forms.BaseForm, platform: Platform | None
) -> HttpResponse:
    context = {"nav": "platforms", "form": form, "platform": platform}
    return render(request, "identities/platform_form.html", context)


# --- identity providers ---------------------------------------------------------------------


@require_safe
@login_required
def provider_list(request: HttpRequest) -> HttpResponse:
    require_permissions(request, VIEW_PROVIDER)
    context = {
        "nav": "providers",
        "providers": queries.list_identity_providers(),
        "can_add": request.user.has_perm(ADD_PROVIDER),
        "can_change": request.user.has_perm(CHANGE_PROVIDER),
    }
    return render(request, "identities/provider_list.html", context)


@require_http_methods(["GET", "HEAD", "POST"])
@login_required
def provider_create(request: HttpRequest) -> HttpResponse:
    require_permissions(request, ADD_PROVIDER)
    if request.method == "POST":
        form = IdentityProviderForm(request.POST)
    else:
        form = IdentityProviderForm()
    if form.is_valid():
        fields = {name: form.cleaned_data[name] for name in IdentityProviderForm.Meta.fields}
        provider = services.create_identity_provider(
            token=form.cleaned_data["scim_token"], actor=request.user, **fields
        )
        messages.success(request, f"Identity provider {provider.name} created.")
        return redirect("identities:provider-list")
    return render_provider_form(request, form, None)


@require_http_methods(["GET", "HEAD", "POST"])
@login_required
def provider_edit(request: HttpRequest, provider_id: int) -> HttpResponse:
    require_permissions(request, CHANGE_PROVIDER)
    provider = queries.get_identity_provider(provider_id)
    if provider is None:
        raise Http404("No such identity provider")
    if request.method == "POST":
        form = IdentityProviderForm(request.POST, instance=provider)
    else:
        form = IdentityProviderForm(instance=provider)
    if form.is_valid():
        fields = {name: form.cleaned_data[name] for name in IdentityProviderForm.Meta.fields}
        token = form.cleaned_data["scim_token"]
        provider = services.update_identity_provider(
            provider, token=token, actor=request.user, **fields
        )
        messages.success(request, f"Identity provider {provider.name} saved.")
        return redirect("identities:provider-list")
    return render_provider_form(request, form, provider)


def render_provider_form(
    request: HttpRequest, form: forms.BaseForm, provider: IdentityProvider | None
) -> HttpResponse:
    context = {"nav": "providers", "form": form, "provider": provider}
    return render(request, "identities/provider_form.html", context)
