"""What a Google Workspace customer holds, through the Directory API: users, groups, org units,
domains, mobile and ChromeOS devices, and users' third-party OAuth tokens, as plain
dataclasses with only the attributes worth tracking."""

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connectors.google_admin import DEFAULT_TIMEOUT_SECONDS, GoogleAdminSession

_SCOPE = "https://www.googleapis.com/auth/admin.directory."
ASSET_SCOPES = (
    _SCOPE + "user.readonly",
    _SCOPE + "group.readonly",
    _SCOPE + "orgunit.readonly",
    _SCOPE + "domain.readonly",
    _SCOPE + "device.mobile.readonly",
    _SCOPE + "device.chromeos.readonly",
    # tokens.list has no read-only scope of its own.
    _SCOPE + "user.security",
)

# The attributes kept per kind. Left out on purpose: etags and sync or login times, which
# change on every read and would make every asset "changed" on every run.
USER_FIELDS = (
    "primaryEmail",
    "orgUnitPath",
    "suspended",
    "archived",
    "isAdmin",
    "isDelegatedAdmin",
    "isEnrolledIn2Sv",
    "isEnforcedIn2Sv",
    "creationTime",
    "aliases",
)
GROUP_FIELDS = ("email", "name", "description", "adminCreated", "aliases")
ORG_UNIT_FIELDS = ("orgUnitPath", "name", "description", "parentOrgUnitPath", "blockInheritance")
DOMAIN_FIELDS = ("domainName", "isPrimary", "verified", "creationTime")
MOBILE_FIELDS = (
    "deviceId",
    "email",
    "model",
    "os",
    "type",
    "status",
    "serialNumber",
    "firstSync",
    "encryptionStatus",
    "devicePasswordStatus",
    "deviceCompromisedStatus",
)
CHROMEOS_FIELDS = (
    "serialNumber",
    "model",
    "status",
    "orgUnitPath",
    "annotatedUser",
    "annotatedAssetId",
    "annotatedLocation",
    "osVersion",
    "platformVersion",
    "bootMode",
    "macAddress",
    "lastEnrollmentTime",
)
TOKEN_FIELDS = ("clientId", "displayText", "anonymous", "nativeApp", "scopes")


@dataclass(frozen=True)
class RemoteAsset:
    """One thing the customer holds; ``external_id`` is Google's immutable id for it."""

    external_id: str
    name: str
    attributes: dict[str, Any]


def _pick(resource: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    picked = {name: resource[name] for name in names if name in resource}
    for name, value in picked.items():
        # Lists whose order Google does not promise compare as sets.
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            picked[name] = sorted(value)
    return picked


class GoogleAssetsClient:
    """The asset inventory of one Workspace customer. ``label`` names the platform in errors."""

    def __init__(
        self,
        key: Mapping[str, Any],
        admin_email: str,
        *,
        api_endpoint: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        label: str = "",
        before_call: Callable[[], None] | None = None,
    ) -> None:
        self.label = label
        self._session = GoogleAdminSession(
            key,
            admin_email,
            scopes=ASSET_SCOPES,
            api_endpoint=api_endpoint,
            timeout=timeout,
            before_call=before_call,
            access_hint=(
                f"The admin {admin_email} needs read access to users, groups, org units, "
                "domains and devices"
            ),
        )
        self._directory = self._session.service("admin", "directory_v1")

    def __repr__(self) -> str:
        return f"<GoogleAssetsClient {self._session!r}>"

    def _subject(self, what: str) -> str:
        return f"the {what}" + (f" of {self.label}" if self.label else "")

    def _pages(self, resource: Any, items: str, what: str, **params: Any) -> Iterator[Any]:
        request = resource.list(**params)
        subject = self._subject(what)
        while request is not None:
            response = self._session.execute(request, subject)
            yield from response.get(items) or []
            request = resource.list_next(request, response)

    def users(self) -> Iterator[RemoteAsset]:
        for user in self._pages(
            self._directory.users(),
            "users",
            "user list",
            customer="my_customer",
            maxResults=500,
            orderBy="email",
        ):
            attributes = _pick(user, USER_FIELDS)
            attributes["fullName"] = (user.get("name") or {}).get("fullName", "")
            yield RemoteAsset(str(user["id"]), str(user["primaryEmail"]), attributes)

    def groups(self) -> Iterator[RemoteAsset]:
        for group in self._pages(
            self._directory.groups(), "groups", "group list", customer="my_customer", maxResults=200
        ):
            yield RemoteAsset(str(group["id"]), str(group["email"]), _pick(group, GROUP_FIELDS))

    def org_units(self) -> list[RemoteAsset]:
        """Every org unit below the root (orgunits.list is not paged)."""
        request = self._directory.orgunits().list(customerId="my_customer", type="all")
        response = self._session.execute(request, self._subject("org unit list"))
        return [
            RemoteAsset(
                str(unit["orgUnitId"]), str(unit["orgUnitPath"]), _pick(unit, ORG_UNIT_FIELDS)
            )
            for unit in response.get("organizationUnits") or []
        ]

    def domains(self) -> list[RemoteAsset]:
        """The customer's domains (domains.list is not paged); the name is the id."""
        request = self._directory.domains().list(customer="my_customer")
        response = self._session.execute(request, self._subject("domain list"))
        return [
            RemoteAsset(str(domain["domainName"]), str(domain["domainName"]), self._domain(domain))
            for domain in response.get("domains") or []
        ]

    @staticmethod
    def _domain(domain: Mapping[str, Any]) -> dict[str, Any]:
        attributes = _pick(domain, DOMAIN_FIELDS)
        attributes["domainAliases"] = sorted(
            str(alias.get("domainAliasName")) for alias in domain.get("domainAliases") or []
        )
        return attributes

    def mobile_devices(self) -> Iterator[RemoteAsset]:
        for device in self._pages(
            self._directory.mobiledevices(),
            "mobiledevices",
            "mobile device list",
            customerId="my_customer",
            maxResults=100,
            projection="FULL",
        ):
            owner = ", ".join(device.get("email") or [])
            name = f"{device.get('model') or 'Mobile device'}" + (f" ({owner})" if owner else "")
            yield RemoteAsset(str(device["resourceId"]), name, _pick(device, MOBILE_FIELDS))

    def chromeos_devices(self) -> Iterator[RemoteAsset]:
        for device in self._pages(
            self._directory.chromeosdevices(),
            "chromeosdevices",
            "ChromeOS device list",
            customerId="my_customer",
            maxResults=200,
            projection="FULL",
        ):
            name = str(device.get("annotatedAssetId") or device.get("serialNumber") or "")
            yield RemoteAsset(str(device["deviceId"]), name, _pick(device, CHROMEOS_FIELDS))

    def tokens(self, user_id: str, user_email: str) -> list[RemoteAsset]:
        """The third-party OAuth grants of one user; none if the user is gone meanwhile."""
        request = self._directory.tokens().list(userKey=user_id)
        response = self._session.execute(
            request, self._subject(f"OAuth tokens of {user_email}"), missing_ok=True
        )
        return [
            RemoteAsset(
                f"{user_id}:{token['clientId']}",
                f"{token.get('displayText') or token['clientId']} ({user_email})",
                {**_pick(token, TOKEN_FIELDS), "userId": user_id, "userEmail": user_email},
            )
            for token in (response or {}).get("items") or []
        ]

    def revoke_token(self, user_id: str, client_id: str) -> bool:
        """Revoke one user's grant to a third-party client; False if it was already gone."""
        request = self._directory.tokens().delete(userKey=user_id, clientId=client_id)
        subject = self._subject(f"OAuth grant of {user_id} to {client_id}")
        return self._session.execute(request, subject, missing_ok=True) is not None
