"""SCIM 2.0 users at an identity provider; the only module that speaks SCIM (over requests)."""

import json
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from jobs.errors import JobError, PermanentError, TransientError

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_OP_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SCIM_MEDIA_TYPE = "application/scim+json"
DEFAULT_TIMEOUT_SECONDS = 30.0
# With every 5xx: worth a retry. 412 means the user changed between our read and our
# conditional write; the retried job reads it afresh.
_TRANSIENT_STATUSES = frozenset({408, 412, 429})
# How a provider without PATCH support answers one (RFC 7644 §3.5.2 leaves PATCH optional).
_PATCH_REFUSED = frozenset({405, 501})
_DETAIL_LIMIT = 300

logger = logging.getLogger(__name__)


class UserAlreadyExists(PermanentError):
    """409 uniqueness: the userName is taken, perhaps by our own create whose answer was lost."""


@dataclass(frozen=True)
class ScimUser:
    """A SCIM user as the rest of AccessHive sees it; id is the provider's immutable id."""

    id: str
    user_name: str
    external_id: str | None
    active: bool
    version: str | None = None
    given_name: str = ""
    family_name: str = ""
    email: str = ""

    @classmethod
    def from_resource(cls, resource: Mapping[str, Any], etag: str | None = None) -> "ScimUser":
        names = resource.get("name") or {}
        meta = resource.get("meta") or {}
        emails = [e for e in resource.get("emails") or [] if isinstance(e, dict)]
        primary = next((e for e in emails if e.get("primary")), emails[0] if emails else {})
        external_id = resource.get("externalId")
        return cls(
            id=str(resource["id"]),
            user_name=str(resource["userName"]),
            external_id=None if external_id is None else str(external_id),
            # RFC 7643 makes "active" optional; a provider that omits it does not deactivate.
            active=bool(resource.get("active", True)),
            version=meta.get("version") or etag,
            given_name=str(names.get("givenName") or ""),
            family_name=str(names.get("familyName") or ""),
            email=str(primary.get("value") or ""),
        )


class ScimClient:
    """Users at one SCIM 2.0 endpoint (base_url is its root, the part before /Users).

    The bearer token is the one the caller just fetched from the vault; it is sent in the
    Authorization header and appears in no message, log or repr. No retries here: Celery
    does the retrying. Not thread-safe (one requests session): build one per job.
    """

    def __init__(
        self,
        base_url: str,
        bearer_token: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        provider_name: str = "Identity provider",
    ) -> None:
        self.provider_name = provider_name
        if not base_url.startswith(("http://", "https://")):
            raise PermanentError(f"{provider_name} SCIM base URL {base_url!r} is not http(s)")
        if not bearer_token:
            raise PermanentError(f"{provider_name} SCIM endpoint {base_url} has no bearer token")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._token = bearer_token
        self._session = requests.Session()

    def __repr__(self) -> str:
        return f"<ScimClient {self.provider_name} at {self.base_url}>"

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> "ScimClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Operations.

    def find_user_by_username(self, user_name: str) -> ScimUser | None:
        subject = f"user {user_name}"
        # A filter's string value is a JSON string (RFC 7644 §3.4.2.2), quotes escaped.
        query = {"filter": f"userName eq {json.dumps(user_name, ensure_ascii=False)}"}
        body = self._json(self._request("GET", "/Users", subject, params=query), subject)
        resources = body.get("Resources") or []
        # Some providers ignore a filter they do not support and list everyone, so the
        # match is checked here too; userName is case-insensitive (RFC 7643 §4.1.1).
        wanted = user_name.casefold()
        matches = [
            resource
            for resource in resources
            if isinstance(resource, dict) and str(resource.get("userName", "")).casefold() == wanted
        ]
        if len(matches) > 1:
            raise PermanentError(
                f"{self.provider_name} has {len(matches)} users named {user_name}: "
                "userName should be unique"
            )
        return self._user_from(matches[0], subject) if matches else None

    def create_user(
        self,
        user_name: str,
        given_name: str,
        family_name: str,
        email: str,
        external_id: str,
        active: bool = True,
    ) -> ScimUser:
        subject = f"user {user_name}"
        body = _user_body(user_name, given_name, family_name, email, external_id, active)
        return self._user(self._request("POST", "/Users", subject, body=body), subject)

    def get_user(self, user_id: str, *, user_name: str | None = None) -> ScimUser | None:
        """None when the provider has no user with this id."""
        subject = _subject(user_id, user_name)
        response = self._request("GET", _user_path(user_id), subject, allow=(404,))
        return None if response.status_code == 404 else self._user(response, subject)

    def set_active(self, user_id: str, active: bool, *, user_name: str | None = None) -> ScimUser:
        """PATCH active; on a provider that refuses PATCH, a conditional PUT of the whole user."""
        subject = _subject(user_id, user_name)
        body = {
            "schemas": [PATCH_OP_SCHEMA],
            "Operations": [{"op": "replace", "path": "active", "value": active}],
        }
        path = _user_path(user_id)
        response = self._request("PATCH", path, subject, body=body, allow=_PATCH_REFUSED)
        if response.status_code in _PATCH_REFUSED:
            logger.info(
                "connectors.scim.patch_refused",
                extra={"scim_status": response.status_code, "scim_base_url": self.base_url},
            )
            return self._put_active(user_id, active, subject)
        if response.status_code == 204 or not response.content:
            # RFC 7644 §3.5.2 lets a provider answer a PATCH with no body.
            return self._require(user_id, subject)
        return self._user(response, subject)

    def replace_user(
        self,
        user_id: str,
        user_name: str,
        given_name: str,
        family_name: str,
        email: str,
        external_id: str,
        active: bool = True,
        *,
        version: str | None = None,
    ) -> ScimUser:
        """PUT: attributes not given here are cleared. With version, only if still current."""
        subject = f"user {user_name}"
        body = {"id": user_id} | _user_body(
            user_name, given_name, family_name, email, external_id, active
        )
        headers = {"If-Match": version} if version else None
        response = self._request("PUT", _user_path(user_id), subject, body=body, headers=headers)
        return self._user(response, subject)

    def delete_user(self, user_id: str, *, user_name: str | None = None) -> bool:
        """False when the user was already gone, so a repeated delete is not an error."""
        subject = _subject(user_id, user_name)
        response = self._request("DELETE", _user_path(user_id), subject, allow=(404,))
        return response.status_code != 404

    def ensure_user(
        self,
        user_name: str,
        given_name: str,
        family_name: str,
        email: str,
        external_id: str,
        active: bool = True,
    ) -> ScimUser:
        """The user named user_name, created only when absent, so running twice is safe.

        A user already there is adopted (returned as found) when its externalId is ours or
        empty; one carrying another externalId raises UserAlreadyExists.
        """
        found = self.find_user_by_username(user_name)
        if found is None:
            try:
                return self.create_user(
                    user_name, given_name, family_name, email, external_id, active
                )
            except UserAlreadyExists:
                # Our own earlier create may have gone through with its answer lost.
                found = self.find_user_by_username(user_name)
                if found is None:
                    # Taken in a way a userName search cannot see (another unique attribute).
                    raise
        if found.external_id not in (None, "", external_id):
            raise UserAlreadyExists(
                f"{self.provider_name} already has user {user_name} (id {found.id}) with "
                f"externalId {found.external_id!r}, not ours ({external_id!r}): not adopting it"
            )
        logger.info(
            "connectors.scim.user.adopted",
            extra={"scim_user_name": user_name, "scim_id": found.id},
        )
        return found

    # The one way out.

    def _request(
        self,
        method: str,
        path: str,
        subject: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        allow: Collection[int] = (),
    ) -> requests.Response:
        """Send one request with auth and a timeout; the only place SCIM errors become ours.
        Statuses in allow come back to the caller instead of raising."""
        all_headers = {"Accept": SCIM_MEDIA_TYPE, "Authorization": f"Bearer {self._token}"}
        if body is not None:
            all_headers["Content-Type"] = SCIM_MEDIA_TYPE
        all_headers.update(headers or {})
        refused_by_requests: str | None = None
        try:
            response = self._session.request(
                method,
                self.base_url + path,
                params=params,
                data=None if body is None else json.dumps(body).encode(),
                headers=all_headers,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TransientError(
                self._redact(
                    f"{self.provider_name} unreachable for {subject}: {type(exc).__name__}: {exc}"
                )
            ) from exc
        except requests.RequestException as exc:
            # requests quotes a header value it refuses, token included: keep neither its
            # message nor the exception (raised outside this block, it is not our context).
            refused_by_requests = type(exc).__name__
        if refused_by_requests is not None:
            raise PermanentError(
                f"{self.provider_name} request for {subject} could not be sent: "
                f"{refused_by_requests} (check the SCIM base URL and token)"
            )
        logger.debug(
            "connectors.scim.request",
            extra={"scim_method": method, "scim_path": path, "scim_status": response.status_code},
        )
        if response.status_code < 300 or response.status_code in allow:
            return response
        raise self._error(response, subject)

    def _error(self, response: requests.Response, subject: str) -> JobError:
        status = response.status_code
        transient = status in _TRANSIENT_STATUSES or status >= 500
        verb = "failed on" if transient else "rejected"
        message = f"{self.provider_name} {verb} {subject}: {status} {_detail(response)}"
        if status in (401, 403):
            message += " (check the SCIM bearer token and its permissions)"
        elif 300 <= status < 400:
            message += f" (redirected to {response.headers.get('Location', '?')})"
        message = self._redact(message)
        if transient:
            return TransientError(message)
        if status == 409:
            return UserAlreadyExists(message)
        return PermanentError(message)

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "[redacted]")

    def _json(self, response: requests.Response, subject: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise PermanentError(
                f"{self.provider_name} answered {response.status_code} for {subject} "
                "without a SCIM JSON object"
            )
        return body

    def _user(self, response: requests.Response, subject: str) -> ScimUser:
        return self._user_from(self._json(response, subject), subject, response.headers.get("ETag"))

    def _user_from(
        self, resource: Mapping[str, Any], subject: str, etag: str | None = None
    ) -> ScimUser:
        try:
            return ScimUser.from_resource(resource, etag)
        except KeyError as exc:
            raise PermanentError(
                f"{self.provider_name} answered for {subject} with a user lacking {exc}"
            ) from None

    def _require(self, user_id: str, subject: str) -> ScimUser:
        response = self._request("GET", _user_path(user_id), subject, allow=(404,))
        if response.status_code == 404:
            raise PermanentError(f"{self.provider_name} has no {subject} any more")
        return self._user(response, subject)

    def _put_active(self, user_id: str, active: bool, subject: str) -> ScimUser:
        path = _user_path(user_id)
        current = self._request("GET", path, subject)
        resource = self._json(current, subject)
        version = (resource.get("meta") or {}).get("version") or current.headers.get("ETag")
        # The whole resource as read goes back, so a PUT clears none of the attributes this
        # connector does not model (phone numbers, groups, extensions).
        resource = {key: value for key, value in resource.items() if key != "meta"}
        resource["active"] = active
        headers = {"If-Match": version} if version else None
        return self._user(
            self._request("PUT", path, subject, body=resource, headers=headers), subject
        )


def _user_body(
    user_name: str,
    given_name: str,
    family_name: str,
    email: str,
    external_id: str,
    active: bool,
) -> dict[str, Any]:
    return {
        "schemas": [USER_SCHEMA],
        "userName": user_name,
        "externalId": external_id,
        "name": {"givenName": given_name, "familyName": family_name},
        "emails": [{"value": email, "primary": True, "type": "work"}],
        "active": active,
    }


def _user_path(user_id: str) -> str:
    return "/Users/" + quote(user_id, safe="")


def _subject(user_id: str, user_name: str | None) -> str:
    return f"user {user_name} (id {user_id})" if user_name else f"user id {user_id}"


def _detail(response: requests.Response) -> str:
    """The provider's own words: SCIM's detail (or scimType), else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        detail = body.get("detail") or body.get("scimType")
        if detail:
            return " ".join(str(detail).split())[:_DETAIL_LIMIT]
    text = " ".join(response.text.split())[:_DETAIL_LIMIT]
    return text or response.reason or ""
