"""Reading an identity source page by page into plain records: Google Workspace through the
Directory API, LDAP/AD through ldap3; secrets come from the vault at the moment of use."""

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from connectors.google_workspace import DIRECTORY_SCOPES, GoogleWorkspaceClient, Page
from connectors.ldap import LdapDirectory, LdapEndpoint, LdapEntry, normalize_dn, org_unit_path
from directory.models import DISABLED_MATCHES, IdentitySource
from identities.handlers.common import platform_pacer, read_secret
from identities.models import Platform
from jobs.errors import PermanentError


@dataclass(frozen=True)
class UserRecord:
    external_id: str
    ref: str
    username: str
    email: str
    given_name: str = ""
    family_name: str = ""
    display_name: str = ""
    department: str = ""
    title: str = ""
    manager: str = ""
    org_unit: str = ""
    disabled: bool = False


@dataclass(frozen=True)
class GroupRecord:
    external_id: str
    ref: str
    name: str
    email: str = ""


@dataclass(frozen=True)
class Problem:
    """An object that could not be read; listed on the run, the sync goes on without it."""

    object: str
    message: str


@dataclass
class Batch:
    """One page read from the source: whatever it held, ready to stage."""

    phase: str
    users: list[UserRecord] = field(default_factory=list)
    groups: list[GroupRecord] = field(default_factory=list)
    # (group ref, user ref)
    memberships: list[tuple[str, str]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


class SourceReader(Protocol):
    def batches(self) -> Iterator[Batch]: ...

    def close(self) -> None: ...


def reader_for(source: IdentitySource) -> SourceReader:
    if source.kind == IdentitySource.Kind.GOOGLE_WORKSPACE:
        return GoogleWorkspaceReader(source)
    if source.kind == IdentitySource.Kind.LDAP:
        return LdapReader(source)
    raise PermanentError(f"Directory source {source.name} has unknown kind {source.kind!r}")


def google_directory_client(source: IdentitySource) -> GoogleWorkspaceClient:
    platform = source.platform
    if platform is None or not platform.is_google_workspace:
        raise PermanentError(
            f"Directory source {source.name} needs a Google Workspace platform for its "
            "credentials; choose one on the source's page"
        )
    return platform_client(platform)


def platform_client(platform: Platform, *, paced: bool = False) -> GoogleWorkspaceClient:
    """A Directory API client with the user and group scopes, acting as the platform's admin.

    ``paced``: take a token from the platform's shared rate limit before each call, as the
    provisioning jobs do (joiner/mover/leaver jobs run beside them). A sync's listing is not
    paced: at the default 10 calls a second a 100,000-user directory would take 9 minutes of
    waiting alone, and a wait past the limiter's maximum would restart it from the top.
    """
    secret = read_secret(
        platform.service_account_key_ref, f"The service-account key of platform {platform.name}"
    )
    return GoogleWorkspaceClient(
        json.loads(secret["json"]),
        platform.admin_email,
        api_endpoint=platform.api_endpoint or None,
        scopes=DIRECTORY_SCOPES,
        before_call=platform_pacer(platform) if paced else None,
    )


class GoogleWorkspaceReader:
    """users.list, then groups.list with each group's members.list, all paged."""

    def __init__(self, source: IdentitySource) -> None:
        self.source = source
        self.client = google_directory_client(source)
        self.scope = {"domain": source.gws_domain} if source.gws_domain else {}

    def close(self) -> None:
        pass  # httplib2 holds nothing worth closing early

    def batches(self) -> Iterator[Batch]:
        page_size = max(1, min(self.source.page_size, 500))
        for page in self.client.user_pages(page_size=page_size, **self.scope):
            yield self._users(page)
        group_page_size = min(page_size, 200)
        for group_page in self.client.group_pages(page_size=group_page_size, **self.scope):
            groups = [GroupRecord(g.id, g.id, g.name or g.email, g.email) for g in group_page.items]
            yield Batch(
                "groups",
                groups=groups,
                problems=[Problem(p.ref, p.message) for p in group_page.problems],
            )
            for group in groups:
                for member_page in self.client.member_pages(
                    group.external_id, page_size=group_page_size
                ):
                    yield Batch(
                        "memberships",
                        memberships=[
                            (group.ref, member.id)
                            for member in member_page.items
                            # Nested groups and whole-customer members are not people.
                            if member.type == "USER"
                        ],
                        problems=[Problem(p.ref, p.message) for p in member_page.problems],
                    )

    def _users(self, page: Page) -> Batch:  # type: ignore[type-arg]
        batch = Batch("users", problems=[Problem(p.ref, p.message) for p in page.problems])
        for user in page.items:
            batch.users.append(
                UserRecord(
                    external_id=user.id,
                    ref=user.id,
                    username=user.primary_email.lower(),
                    email=user.primary_email.lower(),
                    given_name=user.given_name,
                    family_name=user.family_name,
                    display_name=user.name,
                    department=user.department,
                    title=user.title,
                    manager=user.manager_email.lower(),
                    org_unit=user.org_unit_path,
                    disabled=user.suspended or user.archived,
                )
            )
        return batch


class LdapReader:
    """A paged search for groups, then one for users; memberships from the users' memberOf
    or the groups' member attribute, as the mapping says, with nested groups expanded: a
    user in a group inside a group is a member of both."""

    def __init__(self, source: IdentitySource) -> None:
        self.source = source
        self.mapping = source.mapping()
        if self.mapping["disabled_match"] not in DISABLED_MATCHES:
            raise PermanentError(
                f"Directory source {source.name}: disabled_match must be one of "
                f"{', '.join(DISABLED_MATCHES)}, not {self.mapping['disabled_match']!r}"
            )
        if not source.ldap_base_dn:
            raise PermanentError(f"Directory source {source.name} has no base DN")
        password = ""
        if source.ldap_bind_dn:
            password = read_secret(
                source.ldap_password_ref, f"The bind password of directory source {source.name}"
            )["password"]
        self.directory = LdapDirectory(
            LdapEndpoint(
                url=source.ldap_url,
                bind_dn=source.ldap_bind_dn,
                start_tls=source.ldap_start_tls,
                ca_certificate=source.ldap_ca_certificate,
            ),
            password,
            name=f"Directory source {source.name}",
        )
        # Group ref -> the groups it sits in directly; then, transitively (see _expand).
        self._parents: dict[str, set[str]] = {}
        self._ancestors: dict[str, frozenset[str]] = {}
        # Group ref -> its member refs (membership_on="group" only).
        self._members: dict[str, list[str]] = {}

    def close(self) -> None:
        self.directory.close()

    def batches(self) -> Iterator[Batch]:
        m = self.mapping
        page_size = max(1, self.source.page_size)
        # Groups first: their nesting must be known to expand a user's memberships.
        group_attributes = [m[key] for key in ("group_id", "group_name", "group_email") if m[key]]
        group_attributes.append(
            m["member_of"] if m["membership_on"] == "user" else m["group_member"]
        )
        for entries in self.directory.search_pages(
            self.source.ldap_base_dn, m["group_filter"], group_attributes, page_size=page_size
        ):
            batch = Batch("groups")
            for entry in entries:
                self._add_group(batch, entry)
            yield batch
        self._expand()
        user_attributes = [
            m[key]
            for key in (
                "id",
                "username",
                "email",
                "given_name",
                "family_name",
                "display_name",
                "department",
                "title",
                "manager",
                "disabled_attribute",
            )
            if m.get(key)
        ]
        if m["membership_on"] == "user":
            user_attributes.append(m["member_of"])
        for entries in self.directory.search_pages(
            self.source.ldap_base_dn, m["user_filter"], user_attributes, page_size=page_size
        ):
            batch = Batch("users")
            for entry in entries:
                self._add_user(batch, entry)
            yield batch
        if self._members:
            yield Batch("memberships", memberships=self._group_memberships())

    def _expand(self) -> None:
        """Every group's ancestors (the groups it is in, directly or through others); a
        cycle (A in B in A, which AD allows) ends where it started."""
        for group in self._parents:
            seen: set[str] = set()
            todo = list(self._parents[group])
            while todo:
                parent = todo.pop()
                if parent not in seen and parent != group:
                    seen.add(parent)
                    todo.extend(self._parents.get(parent, ()))
            self._ancestors[group] = frozenset(seen)

    def _with_ancestors(self, groups: Iterable[str]) -> set[str]:
        found = set(groups)
        for group in list(found):
            found |= self._ancestors.get(group, frozenset())
        return found

    def _group_memberships(self) -> list[tuple[str, str]]:
        pairs: list[tuple[str, str]] = []
        for group, members in self._members.items():
            for member in members:
                if member not in self._members:  # a nested group is not a person
                    pairs.extend((g, member) for g in self._with_ancestors([group]))
        return pairs

    def _add_user(self, batch: Batch, entry: LdapEntry) -> None:
        m = self.mapping
        external_id, username = entry.first(m["id"]), entry.first(m["username"])
        missing = [
            m[key] for key, value in (("id", external_id), ("username", username)) if not value
        ]
        if missing:
            batch.problems.append(
                Problem(entry.dn, f"user {entry.dn}: missing attribute {', '.join(missing)}")
            )
            return
        try:
            disabled = self._disabled(entry)
        except ValueError:
            value = entry.first(m["disabled_attribute"])
            batch.problems.append(
                Problem(
                    entry.dn,
                    f"user {entry.dn}: {m['disabled_attribute']} {value!r} is not a number",
                )
            )
            return
        ref = normalize_dn(entry.dn)
        batch.users.append(
            UserRecord(
                external_id=external_id,
                ref=ref,
                username=username,
                email=entry.first(m["email"]).lower(),
                given_name=entry.first(m["given_name"]),
                family_name=entry.first(m["family_name"]),
                display_name=entry.first(m["display_name"]),
                department=entry.first(m["department"]),
                title=entry.first(m["title"]),
                manager=normalize_dn(entry.first(m["manager"])),
                org_unit=org_unit_path(entry.dn),
                disabled=disabled,
            )
        )
        if m["membership_on"] == "user":
            direct = (normalize_dn(group_dn) for group_dn in entry.values(m["member_of"]))
            batch.memberships.extend((group, ref) for group in self._with_ancestors(direct))

    def _disabled(self, entry: LdapEntry) -> bool:
        m = self.mapping
        values = entry.values(m["disabled_attribute"]) if m["disabled_attribute"] else ()
        if m["disabled_match"] == "present":
            return bool(values)
        if not values:
            return False
        if m["disabled_match"] == "equals":
            return any(v.strip().lower() == m["disabled_value"].strip().lower() for v in values)
        return bool(int(values[0]) & int(m["disabled_value"], 0))

    def _add_group(self, batch: Batch, entry: LdapEntry) -> None:
        m = self.mapping
        external_id = entry.first(m["group_id"])
        if not external_id:
            batch.problems.append(
                Problem(entry.dn, f"group {entry.dn}: missing attribute {m['group_id']}")
            )
            return
        ref = normalize_dn(entry.dn)
        batch.groups.append(
            GroupRecord(
                external_id=external_id,
                ref=ref,
                name=entry.first(m["group_name"]) or entry.dn,
                email=entry.first(m["group_email"]).lower(),
            )
        )
        if m["membership_on"] == "user":
            self._parents[ref] = {normalize_dn(dn) for dn in entry.values(m["member_of"])}
        else:
            members = [normalize_dn(dn) for dn in entry.values(m["group_member"])]
            self._members[ref] = members
            for member in members:
                self._parents.setdefault(member, set()).add(ref)
