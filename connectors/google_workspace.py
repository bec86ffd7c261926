"""Google Workspace Directory users; the only module importing googleapiclient, google.oauth2."""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import google_auth_httplib2
import httplib2
from google.auth import exceptions as auth_exceptions
from google.oauth2 import service_account
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from jobs.errors import JobError, PermanentError, TransientError

USER_SCOPE = "https://www.googleapis.com/auth/admin.directory.user"
DEFAULT_TIMEOUT_SECONDS = 30.0
# Google's own advice is to back off and retry these; "forbidden" is not among them.
_RATE_LIMIT_REASONS = frozenset({"userRateLimitExceeded", "rateLimitExceeded", "quotaExceeded"})
_KEY_FIELDS = ("type", "client_email", "private_key", "private_key_id", "token_uri")


class UserAlreadyExists(PermanentError):
    """409 duplicate: the address is taken, perhaps by our own insert whose answer was lost."""


@dataclass(frozen=True)
class GwsUser:
    """A Google Workspace user as the rest of AccessHive sees it; id is Google's immutable id."""

    id: str
    primary_email: str
    suspended: bool
    org_unit_path: str
    name: str
    given_name: str = ""
    family_name: str = ""
    external_ids: tuple[str, ...] = ()

    @classmethod
    def from_resource(cls, resource: Mapping[str, Any]) -> "GwsUser":
        names = resource.get("name") or {}
        return cls(
            id=str(resource["id"]),
            primary_email=str(resource["primaryEmail"]),
            suspended=bool(resource.get("suspended", False)),
            org_unit_path=str(resource.get("orgUnitPath", "/")),
            name=str(names.get("fullName", "")),
            given_name=str(names.get("givenName", "")),
            family_name=str(names.get("familyName", "")),
            external_ids=tuple(
                str(entry.get("value", "")) for entry in resource.get("externalIds") or ()
            ),
        )


class GoogleWorkspaceClient:
    """Directory users of one Workspace customer, acting as one admin through domain-wide
    delegation. Not thread-safe (httplib2 is not): build one per job."""

    def __init__(
        self,
        key: Mapping[str, Any],
        admin_email: str,
        *,
        api_endpoint: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        missing = [name for name in _KEY_FIELDS if not key.get(name)]
        if missing or key.get("type") != "service_account":
            raise PermanentError(
                "Google Workspace service-account key is not a service_account key"
                + (f" (missing {', '.join(missing)})" if missing else "")
            )
        self.admin_email = admin_email
        self.client_email = str(key["client_email"])
        try:
            from_info = service_account.Credentials.from_service_account_info
            credentials = from_info(dict(key), scopes=[USER_SCOPE])  # type: ignore[no-untyped-call]
        except ValueError as exc:
            # Not chained: the library's message may quote the key it could not read.
            raise PermanentError(
                f"Google Workspace service-account key {self.client_email} is unusable: "
                f"{type(exc).__name__}"
            ) from None
        http = google_auth_httplib2.AuthorizedHttp(
            credentials.with_subject(admin_email), http=httplib2.Http(timeout=timeout)
        )
        service = build(
            "admin",
            "directory_v1",
            http=http,
            static_discovery=True,
            cache_discovery=False,
            client_options={"api_endpoint": api_endpoint} if api_endpoint else None,
        )
        self._users = service.users()

    def __repr__(self) -> str:
        return f"<GoogleWorkspaceClient {self.client_email} as {self.admin_email}>"

    def insert_user(
        self,
        primary_email: str,
        given_name: str,
        family_name: str,
        password: str,
        org_unit_path: str = "/",
        external_id: str = "",
    ) -> GwsUser:
        """Create a user; ``external_id`` marks it as ours, so a retry can recognise it."""
        body: dict[str, Any] = {
            "primaryEmail": primary_email,
            "name": {"givenName": given_name, "familyName": family_name},
            "password": password,
            "orgUnitPath": org_unit_path,
        }
        if external_id:
            body["externalIds"] = [
                {"type": "custom", "customType": "accesshive", "value": external_id}
            ]
        request = self._users.insert(body=body)
        return GwsUser.from_resource(
            self._execute(request, f"user {primary_email}", secret=password)
        )

    def get_user(self, user_key: str) -> GwsUser | None:
        """By primary email, alias or id; None when Google has no such user."""
        resource = self._execute(
            self._users.get(userKey=user_key), f"user {user_key}", missing_ok=True
        )
        return None if resource is None else GwsUser.from_resource(resource)

    def update_user(
        self,
        user_key: str,
        *,
        password: str | None = None,
        hash_function: str | None = None,
        suspended: bool | None = None,
        org_unit_path: str | None = None,
        given_name: str | None = None,
        family_name: str | None = None,
        change_password_at_next_login: bool | None = None,
    ) -> GwsUser:
        """Change only the fields given (users.update has patch semantics)."""
        names = {"givenName": given_name, "familyName": family_name}
        body = {
            "password": password,
            "hashFunction": hash_function,
            "suspended": suspended,
            "orgUnitPath": org_unit_path,
            "changePasswordAtNextLogin": change_password_at_next_login,
            "name": {key: value for key, value in names.items() if value is not None} or None,
        }
        body = {key: value for key, value in body.items() if value is not None}
        if not body:
            raise ValueError("update_user needs at least one field to change")
        request = self._users.update(userKey=user_key, body=body)
        return GwsUser.from_resource(self._execute(request, f"user {user_key}", secret=password))

    def list_users(
        self,
        *,
        domain: str | None = None,
        customer: str | None = None,
        query: str | None = None,
        page_size: int = 500,
    ) -> Iterator[GwsUser]:
        """Every user of a domain, or of the customer (default: the admin's own), all pages."""
        if domain and customer:
            raise ValueError("list_users takes a domain or a customer, not both")
        scope = {"domain": domain} if domain else {"customer": customer or "my_customer"}
        subject = f"the user list of {domain or customer or 'my_customer'}"
        request = self._users.list(**scope, query=query, maxResults=page_size, orderBy="email")
        while request is not None:
            response = self._execute(request, subject)
            for resource in response.get("users", []):
                yield GwsUser.from_resource(resource)
            request = self._users.list_next(request, response)

    def delete_user(self, user_key: str) -> bool:
        """False when the user was already gone, so a repeated delete is not an error."""
        request = self._users.delete(userKey=user_key)
        # A 204 comes back as "", a 404 (missing_ok) as None.
        return self._execute(request, f"user {user_key}", missing_ok=True) is not None

    def _execute(
        self, request: Any, subject: str, *, secret: str | None = None, missing_ok: bool = False
    ) -> Any:
        """Run one call; the only place Google's errors become ours. No library retries:
        Celery does the retrying."""
        try:
            return request.execute()
        except HttpError as exc:
            if missing_ok and exc.status_code == 404:
                return None
            raise _from_http_error(exc, subject, secret) from exc
        except auth_exceptions.RefreshError as exc:
            detail = exc.args[0] if exc.args else str(exc)
            error_class = TransientError if exc.retryable else PermanentError
            raise error_class(
                f"Google Workspace did not grant a token to {self.client_email} acting as "
                f"{self.admin_email} (for {subject}): {detail}"
            ) from exc
        except (auth_exceptions.TransportError, httplib2.HttpLib2Error, OSError) as exc:
            # OSError covers refused connections and timeouts, which httplib2 lets through.
            raise TransientError(
                f"Google Workspace unreachable for {subject}: {type(exc).__name__}: {exc}"
            ) from exc


def _from_http_error(exc: HttpError, subject: str, secret: str | None) -> JobError:
    status = exc.status_code
    details = exc.error_details if isinstance(exc.error_details, list) else []
    reasons = {detail.get("reason") for detail in details if isinstance(detail, dict)}
    transient = status == 429 or status >= 500 or bool(reasons & _RATE_LIMIT_REASONS)
    verb = "failed on" if transient else "rejected"
    message = f"Google Workspace {verb} {subject}: {status} {exc.reason}"
    if secret:
        message = message.replace(secret, "[redacted]")
    if transient:
        return TransientError(message)
    if status == 409 and reasons <= {"duplicate"}:
        return UserAlreadyExists(message)
    return PermanentError(message)
