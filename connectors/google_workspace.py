"""Google Workspace Directory users, groups and members; the only module importing
googleapiclient, google.oauth2."""

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import google_auth_httplib2
import httplib2
from google.auth import exceptions as auth_exceptions
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from connectors.google_admin import delegated_credentials
from jobs.errors import JobError, PermanentError, TransientError

USER_SCOPE = "https://www.googleapis.com/auth/admin.directory.user"
GROUP_SCOPE = "https://www.googleapis.com/auth/admin.directory.group"
# What directory sync and joiner/mover/leaver automation need delegated to the service account.
DIRECTORY_SCOPES = (USER_SCOPE, GROUP_SCOPE)
# Field masks for the list calls: only what directory sync stores, so a page of 500 users
# stays small on the wire.
USER_LIST_FIELDS = (
    "nextPageToken,users(id,primaryEmail,name(givenName,familyName,fullName),suspended,"
    "archived,orgUnitPath,organizations(primary,department,title),relations(type,value),"
    "externalIds)"
)
GROUP_LIST_FIELDS = "nextPageToken,groups(id,email,name)"
MEMBER_LIST_FIELDS = "nextPageToken,members(id,email,type,role,status)"
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
    department: str = ""
    title: str = ""
    manager_email: str = ""
    archived: bool = False

    @classmethod
    def from_resource(cls, resource: Mapping[str, Any]) -> "GwsUser":
        names = resource.get("name") or {}
        organizations = [o for o in resource.get("organizations") or () if isinstance(o, dict)]
        organization = next((o for o in organizations if o.get("primary")), None) or (
            organizations[0] if organizations else {}
        )
        relations = [r for r in resource.get("relations") or () if isinstance(r, dict)]
        manager = next((r for r in relations if r.get("type") == "manager"), {})
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
            department=str(organization.get("department") or ""),
            title=str(organization.get("title") or ""),
            manager_email=str(manager.get("value") or ""),
            archived=bool(resource.get("archived", False)),
        )


@dataclass(frozen=True)
class GwsGroup:
    """A Google Workspace group; id is Google's immutable id."""

    id: str
    email: str
    name: str = ""

    @classmethod
    def from_resource(cls, resource: Mapping[str, Any]) -> "GwsGroup":
        return cls(
            id=str(resource["id"]),
            email=str(resource["email"]),
            name=str(resource.get("name") or ""),
        )


@dataclass(frozen=True)
class GwsMember:
    """One member of a group: a user (type USER), a group (GROUP) or a customer (CUSTOMER)."""

    id: str
    email: str
    type: str = "USER"
    role: str = "MEMBER"
    status: str = ""

    @classmethod
    def from_resource(cls, resource: Mapping[str, Any]) -> "GwsMember":
        return cls(
            id=str(resource["id"]),
            email=str(resource.get("email") or ""),
            type=str(resource.get("type") or "USER"),
            role=str(resource.get("role") or "MEMBER"),
            status=str(resource.get("status") or ""),
        )


@dataclass(frozen=True)
class ObjectProblem:
    """An object in a listing that could not be read (missing a field Google always sends)."""

    ref: str
    message: str


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing: the objects read, and those that could not be."""

    items: list[T]
    problems: list[ObjectProblem] = field(default_factory=list)


def _read_page(resources: Sequence[Any], parse: Any, kind: str, subject: str) -> Page[Any]:
    items, problems = [], []
    for position, resource in enumerate(resources):
        try:
            if not isinstance(resource, dict):
                raise TypeError("not a JSON object")
            items.append(parse(resource))
        except (KeyError, TypeError, ValueError) as exc:
            ref = (
                str(
                    (resource.get("primaryEmail") or resource.get("email") or resource.get("id"))
                    if isinstance(resource, dict)
                    else ""
                )
                or f"#{position + 1} of a page of {subject}"
            )
            missing = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
            problems.append(ObjectProblem(ref, f"{kind} {ref}: unreadable ({missing})"))
    return Page(items, problems)


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
        scopes: Sequence[str] = (USER_SCOPE,),
        before_call: Callable[[], None] | None = None,
    ) -> None:
        # Called before every Directory API request: the caller's rate limit waits there (or
        # raises), so each request, every page of a list included, takes its turn.
        self._before_call = before_call
        missing = [name for name in _KEY_FIELDS if not key.get(name)]
        if missing or key.get("type") != "service_account":
            raise PermanentError(
                "Google Workspace service-account key is not a service_account key"
                + (f" (missing {', '.join(missing)})" if missing else "")
            )
        self.admin_email = admin_email
        self.client_email = str(key["client_email"])
        http = google_auth_httplib2.AuthorizedHttp(
            delegated_credentials(key, admin_email, scopes), http=httplib2.Http(timeout=timeout)
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
        self._groups = service.groups()
        self._members = service.members()

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

    def user_pages(
        self,
        *,
        domain: str | None = None,
        customer: str | None = None,
        page_size: int = 500,
        fields: str = USER_LIST_FIELDS,
    ) -> Iterator[Page[GwsUser]]:
        """Every user, one API page at a time with a field mask; an unreadable user is
        reported in the page's problems instead of failing the listing."""
        if domain and customer:
            raise ValueError("user_pages takes a domain or a customer, not both")
        scope = {"domain": domain} if domain else {"customer": customer or "my_customer"}
        subject = f"the user list of {domain or customer or 'my_customer'}"
        request = self._users.list(**scope, maxResults=page_size, orderBy="email", fields=fields)
        while request is not None:
            response = self._execute(request, subject)
            yield _read_page(response.get("users", []), GwsUser.from_resource, "user", subject)
            request = self._users.list_next(request, response)

    def group_pages(
        self,
        *,
        domain: str | None = None,
        customer: str | None = None,
        page_size: int = 200,
        fields: str = GROUP_LIST_FIELDS,
    ) -> Iterator[Page[GwsGroup]]:
        """Every group, one API page (at most 200) at a time."""
        if domain and customer:
            raise ValueError("group_pages takes a domain or a customer, not both")
        scope = {"domain": domain} if domain else {"customer": customer or "my_customer"}
        subject = f"the group list of {domain or customer or 'my_customer'}"
        request = self._groups.list(**scope, maxResults=page_size, fields=fields)
        while request is not None:
            response = self._execute(request, subject)
            yield _read_page(response.get("groups", []), GwsGroup.from_resource, "group", subject)
            request = self._groups.list_next(request, response)

    def member_pages(
        self, group_key: str, *, page_size: int = 200, fields: str = MEMBER_LIST_FIELDS
    ) -> Iterator[Page[GwsMember]]:
        """The direct members of one group, one API page at a time; a group deleted while
        the listing runs has no members (404 is not an error here)."""
        subject = f"the members of group {group_key}"
        request = self._members.list(groupKey=group_key, maxResults=page_size, fields=fields)
        while request is not None:
            response = self._execute(request, subject, missing_ok=True)
            if response is None:
                return
            yield _read_page(
                response.get("members", []), GwsMember.from_resource, "member", subject
            )
            request = self._members.list_next(request, response)

    def list_groups(
        self, *, domain: str | None = None, customer: str | None = None, page_size: int = 200
    ) -> Iterator[GwsGroup]:
        """Every group of a domain or of the customer; an unreadable one is an error."""
        for page in self.group_pages(domain=domain, customer=customer, page_size=page_size):
            _refuse_problems(page)
            yield from page.items

    def list_members(self, group_key: str, *, page_size: int = 200) -> Iterator[GwsMember]:
        for page in self.member_pages(group_key, page_size=page_size):
            _refuse_problems(page)
            yield from page.items

    def get_group(self, group_key: str) -> GwsGroup | None:
        """By email, alias or id; None when Google has no such group."""
        resource = self._execute(
            self._groups.get(groupKey=group_key), f"group {group_key}", missing_ok=True
        )
        return None if resource is None else GwsGroup.from_resource(resource)

    def insert_member(self, group_key: str, email: str, *, role: str = "MEMBER") -> bool:
        """Add a member; False when it was one already, so a repeated call is not an error."""
        request = self._members.insert(groupKey=group_key, body={"email": email, "role": role})
        try:
            self._execute(request, f"member {email} of group {group_key}")
        except UserAlreadyExists:  # 409 duplicate: "Member already exists."
            return False
        return True

    def delete_member(self, group_key: str, member_key: str) -> bool:
        """Remove a member; False when it was not one (any more)."""
        request = self._members.delete(groupKey=group_key, memberKey=member_key)
        subject = f"member {member_key} of group {group_key}"
        return self._execute(request, subject, missing_ok=True) is not None

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
        if self._before_call is not None:
            self._before_call()
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


def _refuse_problems(page: Page[Any]) -> None:
    if page.problems:
        raise PermanentError("Google Workspace answered with " + page.problems[0].message)


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
