"""The whole SAML round trip over real HTTP, as a browser without JavaScript makes it:
AccessHive on a live server, the sandbox IdP on its own port, `requests` as the browser."""

from urllib.parse import urljoin

import pytest
import requests
from django.urls import reverse

from tests import saml_support
from tests.saml_support import configure, parse_forms

pytestmark = pytest.mark.django_db(transaction=True)
TIMEOUT = 10


def test_sign_in_and_single_logout_through_the_sandbox_idp(live_server):
    idp = saml_support.new_idp().serve_in_thread()
    try:
        idp.register_accesshive(live_server.url)
        configure(idp)
        browser = requests.Session()
        target = reverse("sso:settings")

        started = browser.get(
            live_server.url + reverse("sso:login"),
            params={"next": target},
            allow_redirects=False,
            timeout=TIMEOUT,
        )
        assert started.status_code == 302
        assert started.headers["Location"].startswith(idp.sso_url + "?")

        picker = browser.get(started.headers["Location"], timeout=TIMEOUT)
        assert picker.status_code == 200
        [choose] = parse_forms(picker.text)
        assert ("user", "alice@example.com") in choose.buttons
        chosen = browser.post(
            urljoin(idp.base_url, choose.action),
            data={**choose.fields, "user": "alice@example.com"},
            timeout=TIMEOUT,
        )
        assert chosen.status_code == 200
        [auto_post] = parse_forms(chosen.text)
        assert auto_post.action == live_server.url + reverse("sso:acs")

        signed_in = browser.post(
            auto_post.action, data=auto_post.fields, allow_redirects=False, timeout=TIMEOUT
        )
        assert signed_in.status_code == 302, signed_in.text
        assert signed_in.headers["Location"] == target
        page = browser.get(live_server.url + target, timeout=TIMEOUT)
        assert page.status_code == 200
        assert "alice@example.com" in page.text
        assert len(idp.sessions()) == 1

        # Single logout: AccessHive → the IdP's /slo → AccessHive's SLS → the sign-in page.
        signed_out = browser.post(
            live_server.url + reverse("sso:logout"),
            data={"csrfmiddlewaretoken": browser.cookies["csrftoken"]},
            timeout=TIMEOUT,
        )
        assert signed_out.status_code == 200
        assert signed_out.url == live_server.url + reverse("login")
        assert "signed out of AccessHive and of your identity provider" in signed_out.text
        assert [r.url.split("?")[0] for r in signed_out.history] == [
            live_server.url + reverse("sso:logout"),
            idp.slo_url,
            live_server.url + reverse("sso:sls"),
        ]
        assert idp.sessions() == []
        again = browser.get(live_server.url + target, allow_redirects=False, timeout=TIMEOUT)
        assert again.status_code == 302
    finally:
        idp.shutdown()
