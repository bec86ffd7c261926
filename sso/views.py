"""SAML endpoints (metadata, sign-in, ACS, sign-out, SLS) and Settings > Single sign-on."""

import json
import time
from typing import Any, Literal

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import (
    require_GET,
    require_http_methods,
    require_POST,
    require_safe,
)

from sso import saml, services
from sso.errors import SignInRefused
from sso.forms import AssertionPost, SamlSettingsForm, SignInQuery
from web.pages import require_permissions

CHANGE_SETTINGS = "sso.change_samlsettings"
# The AuthnRequest IDs this browser waits on live in their own signed cookie, not in the
# session: the session cookie is SameSite=Lax, so a browser leaves it out of the IdP's
# cross-site POST to the ACS, and the ACS could never match an answer to its request.
PENDING_COOKIE = "accesshive_saml_requests"
PENDING_SALT = "sso.pending-requests"
PENDING_SECONDS = 600
PENDING_MAX = 5


def _pending(request: HttpRequest) -> list[tuple[str, float]]:
    raw = request.get_signed_cookie(
        PENDING_COOKIE, default="", salt=PENDING_SALT, max_age=PENDING_SECONDS
    )
    try:
        entries = json.loads(urlsafe_base64_decode(raw)) if raw else []
    except ValueError:
        return []
    oldest = time.time() - PENDING_SECONDS
    return [
        (str(entry[0]), float(entry[1]))
        for entry in entries
        if isinstance(entry, list) and len(entry) == 2 and float(entry[1]) > oldest
    ][-PENDING_MAX:]


def _store_pending(
    request: HttpRequest, response: HttpResponse, pending: list[tuple[str, float]]
) -> None:
    # SameSite=None needs Secure, which plain-HTTP development cannot have; there the sandbox
    # IdP is same-site as long as AccessHive is opened at 127.0.0.1 too (the refusal page
    # says so when the cookie did not come back).
    samesite: Literal["None", "Lax"] = "None" if request.is_secure() else "Lax"
    if not pending:
        response.delete_cookie(PENDING_COOKIE, path=saml.cookie_path(), samesite=samesite)
        return
    response.set_signed_cookie(
        PENDING_COOKIE,
        # Base64: JSON's quotes and commas would be escaped in ways browsers do not undo.
        urlsafe_base64_encode(json.dumps(pending[-PENDING_MAX:]).encode()),
        salt=PENDING_SALT,
        max_age=PENDING_SECONDS,
        path=saml.cookie_path(),
        secure=request.is_secure(),
        httponly=True,
        samesite=samesite,
    )


def _refused(
    request: HttpRequest, refusal: SignInRefused, *, cookie_missing: bool = False
) -> HttpResponse:
    context = {
        "reason": refusal.reason,
        # Over plain HTTP a SameSite=Lax cookie comes back on the IdP's POST only when both
        # share a site: 127.0.0.1 and localhost are two sites to a browser.
        "cross_site_hint": cookie_missing and not request.is_secure(),
    }
    return render(request, "sso/refused.html", context, status=refusal.status)


@require_safe
def metadata(request: HttpRequest) -> HttpResponse:
    return HttpResponse(
        services.get_metadata_xml(request), content_type="application/samlmetadata+xml"
    )


@require_safe
def sign_in(request: HttpRequest) -> HttpResponse:
    try:
        next_url = SignInQuery.parse(request.GET)["next"] or None
        url, request_id = services.start_sign_in(request, next_url=next_url)
    except SignInRefused as refusal:
        return _refused(request, refusal)
    response = HttpResponseRedirect(url)
    _store_pending(request, response, [*_pending(request), (request_id, time.time())])
    return response


# The IdP's browser POST comes from another site and carries no CSRF token, so Django's
# check would refuse every sign-in. What CSRF protects against is covered here by the
# assertion itself: it must be signed by the IdP, addressed to this ACS, answer an
# AuthnRequest this browser started (unless IdP-initiated sign-in is turned on), and be
# used only once.
@csrf_exempt
@require_POST
def acs(request: HttpRequest) -> HttpResponse:
    pending = _pending(request)
    posted = AssertionPost.parse(request.POST)
    try:
        signed_in = services.sign_in(
            request,
            saml_response=posted["SAMLResponse"],
            relay_state=posted["RelayState"],
            pending=[request_id for request_id, _ in pending],
        )
    except SignInRefused as refusal:
        missing = refusal.code == "unknown_request" and PENDING_COOKIE not in request.COOKIES
        return _refused(request, refusal, cookie_missing=missing)
    response = redirect(signed_in.redirect_to)
    _store_pending(
        request, response, [entry for entry in pending if entry[0] != signed_in.request_id]
    )
    return response


@require_POST
def sign_out(request: HttpRequest) -> HttpResponse:
    return HttpResponseRedirect(services.sign_out(request))


@require_GET
def single_logout(request: HttpRequest) -> HttpResponse:
    outcome = services.handle_logout_message(request)
    if outcome.error:
        context = {"reason": outcome.error, "signed_in": request.user.is_authenticated}
        return render(request, "sso/logout_refused.html", context, status=400)
    if outcome.redirect_url:
        return HttpResponseRedirect(outcome.redirect_url)
    messages.success(request, "You are signed out of AccessHive and of your identity provider.")
    return redirect(settings.LOGIN_URL)


@require_http_methods(["GET", "HEAD", "POST"])
@login_required
def settings_page(request: HttpRequest) -> HttpResponse:
    require_permissions(request, CHANGE_SETTINGS)
    config = services.get_settings()
    status = 200
    if request.method == "POST":
        form = SamlSettingsForm(request.POST)
        if form.is_valid():
            services.update_settings(actor=request.user, **form.settings_values())
            messages.success(request, "Single sign-on settings saved")
            return redirect("sso:settings")
        status = 400
    else:
        form = SamlSettingsForm.from_settings(config)
    context: dict[str, Any] = {
        "nav": "sso",
        "form": form,
        "config": config,
        "sp": saml.service_provider(request),
        "certificates": saml.describe_certificates(config.idp_x509_cert),
        "sp_certificates": saml.describe_certificates(config.sp_certificate),
    }
    return render(request, "sso/settings.html", context, status=status)
