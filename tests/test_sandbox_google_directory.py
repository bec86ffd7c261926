"""The Google Directory sandbox over raw HTTP: routes, OAuth, error shapes, paging, faults."""

import http.client
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import pytest

from sandbox.google_directory import (
    DISCOVERY,
    GOOGLE_OAUTH_AUDIENCE,
    JWT_BEARER,
    start,
)
from sandbox.google_keys import new_service_account_key, sign_rs256

USER_SCOPE = "https://www.googleapis.com/auth/admin.directory.user"
USERS = "/admin/directory/v1/users"


def call(
    base_url: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = None,
    form: dict[str, str] | None = None,
) -> tuple[int, Any]:
    url = urlsplit(base_url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    payload = None
    if form is not None:
        payload = urlencode(form)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        payload = json.dumps(body)
        headers["Content-Type"] = "application/json"
    connection.request(method, path, payload, headers)
    response = connection.getresponse()
    raw = response.read()
    connection.close()
    return response.status, json.loads(raw) if raw else None


def google_error(code: int, message: str, reason: str, domain: str = "global") -> dict[str, Any]:
    detail = {"message": message, "domain": domain, "reason": reason}
    return {"error": {"code": code, "message": message, "errors": [detail]}}


def claims(key: dict[str, str], **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": key["client_email"],
        "scope": USER_SCOPE,
        "aud": GOOGLE_OAUTH_AUDIENCE,
        "sub": "admin@example.com",
        "iat": now,
        "exp": now + 3600,
    }
    return {name: value for name, value in {**base, **overrides}.items() if value is not None}


def grant(base_url: str, assertion: str) -> tuple[int, Any]:
    form = {"grant_type": JWT_BEARER, "assertion": assertion}
    return call(base_url, "POST", "/token", form=form)


class _NonEmptyText:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(other)


ANY_TEXT = _NonEmptyText()


def ada(**overrides: Any) -> dict[str, Any]:
    return {
        "primaryEmail": "ada@example.com",
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "password": "first-password",
        **overrides,
    }


@pytest.fixture
def sandbox():
    server = start(["example.com"], org_units=["/Engineering", "/Alumni", "/Staff"])
    yield server
    server.shutdown()


@pytest.fixture
def key(sandbox):
    return sandbox.issue_key()


@pytest.fixture
def token(sandbox, key):
    status, body = grant(sandbox.base_url, sign_rs256(key, claims(key)))
    assert status == 200
    return body["access_token"]


def test_every_route_is_a_discovery_method_with_the_same_http_method(sandbox):
    served = {}
    # Users, groups and members; the Reports API and asset routes have their own tests.
    for route in sandbox.routes:
        resource, _, name = route.name.partition(".")
        if resource not in ("users", "groups", "members"):
            continue
        methods = DISCOVERY["resources"][resource]["methods"]
        assert methods[name]["path"] == route.path
        assert methods[name]["httpMethod"] == route.http_method
        served[route.name] = route.http_method
    assert served == {
        "users.insert": "POST",
        "users.get": "GET",
        "users.update": "PUT",
        "users.patch": "PATCH",
        "users.list": "GET",
        "users.delete": "DELETE",
        "groups.list": "GET",
        "groups.get": "GET",
        "groups.insert": "POST",
        "members.list": "GET",
        "members.insert": "POST",
        "members.delete": "DELETE",
    }


@pytest.mark.parametrize("audience", ["own token URL", GOOGLE_OAUTH_AUDIENCE])
def test_a_signed_grant_gets_a_bearer_token(sandbox, key, audience):
    aud = sandbox.token_url if audience == "own token URL" else audience
    status, body = grant(sandbox.base_url, sign_rs256(key, claims(key, aud=aud)))
    assert status == 200
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["access_token"]
    assert sandbox.tokens_issued() == ["admin@example.com"]


@pytest.mark.parametrize(
    ("forge", "status", "error"),
    [
        ("unknown key", 400, "invalid_grant"),
        ("signed by another key", 400, "invalid_grant"),
        ("wrong issuer", 400, "invalid_grant"),
        ("wrong audience", 400, "invalid_grant"),
        ("expired", 400, "invalid_grant"),
        ("unknown scope", 400, "invalid_scope"),
        ("subject in another domain", 401, "unauthorized_client"),
        ("no subject", 401, "unauthorized_client"),
    ],
)
def test_bad_grants_are_refused(sandbox, key, forge, status, error):
    stranger = new_service_account_key(sandbox.token_url)
    now = int(time.time())
    assertion = {
        "unknown key": lambda: sign_rs256(stranger, claims(stranger)),
        "signed by another key": lambda: sign_rs256(
            {**stranger, "private_key_id": key["private_key_id"]}, claims(key)
        ),
        "wrong issuer": lambda: sign_rs256(key, claims(key, iss="someone@else.com")),
        "wrong audience": lambda: sign_rs256(key, claims(key, aud="https://evil.test/token")),
        "expired": lambda: sign_rs256(key, claims(key, iat=now - 7200, exp=now - 3600)),
        "unknown scope": lambda: sign_rs256(key, claims(key, scope="https://example.com/all")),
        "subject in another domain": lambda: sign_rs256(key, claims(key, sub="admin@other.org")),
        "no subject": lambda: sign_rs256(key, claims(key, sub=None)),
    }[forge]()
    assert grant(sandbox.base_url, assertion) == (
        status,
        {"error": error, "error_description": ANY_TEXT},
    )
    assert sandbox.tokens_issued() == []


def test_other_grant_types_are_refused(sandbox):
    status, body = call(sandbox.base_url, "POST", "/token", form={"grant_type": "password"})
    assert (status, body["error"]) == (400, "unsupported_grant_type")


def test_api_calls_need_a_granted_bearer_token(sandbox, token):
    assert call(sandbox.base_url, "GET", f"{USERS}/x") == (
        401,
        google_error(401, "Login Required.", "required"),
    )
    assert call(sandbox.base_url, "GET", f"{USERS}/x", token="ya29.made-up") == (
        401,
        google_error(401, "Invalid Credentials", "authError"),
    )
    assert call(sandbox.base_url, "GET", f"{USERS}/x", token=token)[0] == 404


def test_insert_get_patch_delete_and_the_password_is_kept_but_never_served(sandbox, token):
    status, user = call(sandbox.base_url, "POST", USERS, ada(orgUnitPath="/Staff"), token=token)
    assert status == 200
    assert user["id"].isdigit()
    assert len(user["id"]) == 21
    assert user["kind"] == "admin#directory#user"
    assert user["name"]["fullName"] == "Ada Lovelace"
    assert (user["orgUnitPath"], user["suspended"]) == ("/Staff", False)
    assert "password" not in json.dumps(user)
    assert "first-password" not in json.dumps(user)
    assert sandbox.password_of("ada@example.com") == "first-password"

    for user_key in ("ada@example.com", quote("ada@example.com"), user["id"]):
        status, fetched = call(sandbox.base_url, "GET", f"{USERS}/{user_key}", token=token)
        assert (status, fetched["id"]) == (200, user["id"])
        assert "first-password" not in json.dumps(fetched)

    digest = "5f4dcc3b5aa765d61d8327deb882cf99"
    patch = {"password": digest, "hashFunction": "MD5", "suspended": True}
    status, patched = call(sandbox.base_url, "PATCH", f"{USERS}/{user['id']}", patch, token=token)
    assert (status, patched["suspended"], patched["suspensionReason"]) == (200, True, "ADMIN")
    assert "hashFunction" not in patched
    assert sandbox.password_of(user["id"]) == digest
    assert sandbox.hash_function_of(user["id"]) == "MD5"

    status, updated = call(
        sandbox.base_url, "PUT", f"{USERS}/ada@example.com", {"suspended": False}, token=token
    )
    assert (status, updated["suspended"], updated["orgUnitPath"]) == (200, False, "/Staff")
    assert "suspensionReason" not in updated

    assert call(sandbox.base_url, "DELETE", f"{USERS}/ada@example.com", token=token) == (204, None)
    assert call(sandbox.base_url, "GET", f"{USERS}/{user['id']}", token=token)[0] == 404
    assert sandbox.password_of(user["id"]) is None


def test_errors_have_googles_shape(sandbox, token):
    def post(body: dict[str, Any]) -> tuple[int, Any]:
        return call(sandbox.base_url, "POST", USERS, body, token=token)

    assert post(ada())[0] == 200
    assert post(ada()) == (409, google_error(409, "Entity already exists.", "duplicate"))
    assert post(ada(primaryEmail="ADA@example.com"))[0] == 409
    assert call(sandbox.base_url, "GET", f"{USERS}/bob@example.com", token=token) == (
        404,
        google_error(404, "Resource Not Found: userKey", "notFound"),
    )
    assert post(ada(primaryEmail="bob@other.org")) == (
        404,
        google_error(404, "Domain not found.", "notFound"),
    )
    assert post(ada(primaryEmail="bob@example.com", name={"givenName": "Bob"})) == (
        400,
        google_error(400, "Invalid Input: name.familyName", "invalid"),
    )
    assert post(ada(primaryEmail="bob@example.com", password="short")) == (
        400,
        google_error(400, "Invalid Password", "invalid"),
    )
    assert post(ada(primaryEmail="bob@example.com", suspended="yes"))[0] == 400
    assert sandbox.password_of("bob@example.com") is None
    status, body = call(
        sandbox.base_url, "GET", f"{USERS}?domain=example.com&maxResults=501", token=token
    )
    assert (status, body["error"]["errors"][0]["reason"]) == (400, "invalid")
    assert "[1, 500]" in body["error"]["message"]
    status, body = call(
        sandbox.base_url, "GET", f"{USERS}?domain=example.com&colour=red", token=token
    )
    assert status == 400
    assert call(sandbox.base_url, "GET", USERS, token=token)[0] == 400


def test_list_pages_in_email_order_and_filters_by_query(sandbox, token):
    for number in (4, 1, 6, 0, 3, 5, 2):
        body = ada(
            primaryEmail=f"user{number}@example.com",
            name={"givenName": f"G{number}", "familyName": "F"},
        )
        assert call(sandbox.base_url, "POST", USERS, body, token=token)[0] == 200

    seen, page_sizes, page_token = [], [], None
    while True:
        path = f"{USERS}?customer=my_customer&maxResults=3&orderBy=email"
        if page_token:
            path += f"&pageToken={quote(page_token)}"
        status, page = call(sandbox.base_url, "GET", path, token=token)
        assert status == 200
        seen += [user["primaryEmail"] for user in page["users"]]
        page_sizes.append(len(page["users"]))
        page_token = page.get("nextPageToken")
        if not page_token:
            break
    assert seen == [f"user{number}@example.com" for number in range(7)]
    assert page_sizes == [3, 3, 1]

    def emails(query: str) -> list[str]:
        path = f"{USERS}?domain=example.com&sortOrder=DESCENDING&query={quote(query)}"
        status, page = call(sandbox.base_url, "GET", path, token=token)
        assert status == 200
        return [user["primaryEmail"] for user in page.get("users", [])]

    assert emails("email:user3@example.com") == ["user3@example.com"]
    assert emails("email:USER3@example.com") == ["user3@example.com"]
    assert emails("email:user1*") == ["user1@example.com"]
    assert emails("givenName:g5 familyName:f") == ["user5@example.com"]
    assert emails("isSuspended=false")[:2] == ["user6@example.com", "user5@example.com"]
    assert emails("email:nobody@example.com") == []


def test_faults_over_the_http_control_path(sandbox, token):
    fault = {"method": "users.get", "status": 503, "times": 2}
    status, body = call(sandbox.base_url, "POST", "/_sandbox/faults", fault)
    assert status == 200
    assert body["faults"][0] | fault == body["faults"][0]
    assert call(sandbox.base_url, "POST", "/_sandbox/faults", {"status": 200})[0] == 400
    assert call(sandbox.base_url, "POST", "/_sandbox/faults", {"method": "users.fly"})[0] == 400

    busy = google_error(503, "The service is currently unavailable.", "backendError")
    for _ in range(2):
        assert call(sandbox.base_url, "GET", f"{USERS}/ada@example.com", token=token) == (503, busy)
    assert call(sandbox.base_url, "GET", f"{USERS}/ada@example.com", token=token)[0] == 404

    rate_limited = {"method": "users.get", "status": 403, "reason": "userRateLimitExceeded"}
    call(sandbox.base_url, "POST", "/_sandbox/faults", [rate_limited, {"status": 429}])
    assert call(sandbox.base_url, "GET", f"{USERS}/x", token=token) == (
        403,
        google_error(403, "User Rate Limit Exceeded", "userRateLimitExceeded", "usageLimits"),
    )
    assert call(sandbox.base_url, "GET", f"{USERS}/x", token=token)[1]["error"]["code"] == 429
    call(sandbox.base_url, "POST", "/_sandbox/faults", {"status": 500, "times": None})
    assert call(sandbox.base_url, "DELETE", "/_sandbox/faults") == (204, None)
    assert call(sandbox.base_url, "GET", "/_sandbox/faults") == (200, {"faults": []})
    assert call(sandbox.base_url, "GET", f"{USERS}/x", token=token)[0] == 404


def test_silent_success_then_409_creates_the_user_and_answers_503(sandbox, token):
    sandbox.faults.add(mode="silent_success_then_409")
    assert call(sandbox.base_url, "POST", USERS, ada(), token=token)[0] == 503
    assert [user["primaryEmail"] for user in sandbox.users()] == ["ada@example.com"]
    assert call(sandbox.base_url, "POST", USERS, ada(), token=token)[0] == 409


def test_runs_as_a_command_and_writes_a_key_for_itself(tmp_path: Path):
    key_path = tmp_path / "key.json"
    command = [sys.executable, "-m", "sandbox.google_directory", "--port", "0"]
    command += ["--domain", "example.org", "--key-out", str(key_path)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        banner = process.stdout.readline() if process.stdout else ""
        assert "example.org" in banner
        key = json.loads(key_path.read_text())
        assert key["type"] == "service_account"
        assert key_path.stat().st_mode & 0o777 == 0o600
        base_url = key["token_uri"].removesuffix("token")
        status, body = grant(base_url, sign_rs256(key, claims(key, sub="admin@example.org")))
        assert status == 200
        assert call(base_url, "GET", f"{USERS}/x", token=body["access_token"])[0] == 404
    finally:
        process.terminate()
        process.wait(timeout=10)


# --- refusing what Google refuses -----------------------------------------------------------


def test_an_unknown_org_unit_is_refused_and_a_known_one_taken(sandbox, token):
    status, body = call(
        sandbox.base_url, "POST", USERS, ada(orgUnitPath="/Engneering"), token=token
    )
    assert (status, body) == (400, google_error(400, "Invalid Input: INVALID_OU_ID", "invalid"))
    assert sandbox.users() == []  # nothing half-made

    sandbox.add_org_unit("/Engineering/Platform/Infra")  # and its parents
    status, user = call(
        sandbox.base_url, "POST", USERS, ada(orgUnitPath="/Engineering/Platform"), token=token
    )
    assert (status, user["orgUnitPath"]) == (200, "/Engineering/Platform")
    status, body = call(
        sandbox.base_url,
        "PUT",
        f"{USERS}/ada@example.com",
        {"orgUnitPath": "/Nowhere"},
        token=token,
    )
    assert (status, body["error"]["message"]) == (400, "Invalid Input: INVALID_OU_ID")
    assert sandbox.users()[0]["orgUnitPath"] == "/Engineering/Platform"


def test_a_fields_mask_is_applied_and_an_invalid_one_refused(sandbox, token):
    status, user = call(
        sandbox.base_url,
        "POST",
        f"{USERS}?fields=id,primaryEmail,name(givenName)",
        ada(),
        token=token,
    )
    assert status == 200
    assert set(user) == {"id", "primaryEmail", "name"}
    assert user["name"] == {"givenName": "Ada"}
    status, listed = call(
        sandbox.base_url,
        "GET",
        f"{USERS}?customer=my_customer&fields=users(primaryEmail,organizations(title))",
        token=token,
    )
    assert (status, listed) == (200, {"users": [{"primaryEmail": "ada@example.com"}]})

    for mask, name in (
        ("primaryEmail,nickname", "nickname"),
        ("users(primaryEmail,nope)", "nope"),
        ("name(middleName)", "middleName"),
    ):
        path = f"{USERS}/ada@example.com?fields={mask}"
        if mask.startswith("users"):
            path = f"{USERS}?customer=my_customer&fields={mask}"
        status, body = call(sandbox.base_url, "GET", path, token=token)
        message = f"Invalid field selection {name}"
        assert (status, body) == (400, google_error(400, message, "invalidParameter")), mask
    status, body = call(
        sandbox.base_url,
        "POST",
        f"{USERS}?fields=id,bogus",
        ada(primaryEmail="bob@example.com"),
        token=token,
    )
    assert status == 400
    assert len(sandbox.users()) == 1  # refused before anything was made


@pytest.mark.parametrize(
    "password",
    [
        pytest.param("x" * 101, id="over-100-characters"),
        pytest.param("short", id="under-8-characters"),
        pytest.param("pässwörd-lång", id="not-ascii"),
        pytest.param("tab\tinside-it", id="control-character"),
    ],
)
def test_a_password_google_would_not_take_is_refused(sandbox, token, password):
    status, body = call(sandbox.base_url, "POST", USERS, ada(password=password), token=token)
    assert (status, body) == (400, google_error(400, "Invalid Password", "invalid"))
    assert sandbox.users() == []


def test_the_longest_and_hashed_passwords_are_taken(sandbox, token):
    status, _ = call(sandbox.base_url, "POST", USERS, ada(password="p" * 100), token=token)
    assert status == 200
    sha1 = "5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8"
    status, _ = call(
        sandbox.base_url,
        "PUT",
        f"{USERS}/ada@example.com",
        {"password": sha1, "hashFunction": "SHA-1"},
        token=token,
    )
    assert status == 200


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param(
            {"nickname": "Countess"},
            "Invalid JSON payload received. Unknown name \"nickname\" at 'user': "
            "Cannot find field.",
            id="unknown-field",
        ),
        pytest.param(
            {"name": {"givenName": "Ada", "familyName": "Lovelace", "middleName": "Augusta"}},
            "Invalid JSON payload received. Unknown name \"middleName\" at 'user.name': "
            "Cannot find field.",
            id="unknown-name-part",
        ),
        pytest.param(
            {"externalIds": "E-1"},
            "Invalid value at 'user.externalIds' (repeated externalIds), \"E-1\"",
            id="externalIds-as-a-string",
        ),
        pytest.param(
            {"suspended": "yes"},
            "Invalid value at 'user.suspended' (TYPE_BOOL), \"yes\"",
            id="boolean-as-a-string",
        ),
        pytest.param(
            {"primaryEmail": 42},
            "Invalid value at 'user.primaryEmail' (TYPE_STRING), 42",
            id="number-for-a-string",
        ),
    ],
)
def test_unknown_fields_and_wrong_types_are_refused(sandbox, token, change, message):
    status, body = call(sandbox.base_url, "POST", USERS, {**ada(), **change}, token=token)
    assert (status, body) == (400, google_error(400, message, "invalid"))
    assert sandbox.users() == []
