"""Shared setup for the directory tests: a slapd-backed LDAP source, a sandbox-backed Google
Workspace source and platform, and running a sync through the real job runner."""

from collections.abc import Iterator
from typing import Any

from directory import services
from directory.models import AD_MAPPING, IdentitySource
from identities.models import Platform
from identities.services import create_identity_provider, create_platform
from jobs.models import Job
from sandbox import google_directory, scim
from tests.inline import deliver
from tests.slapd import BASE_DN, READER_DN, READER_PASSWORD, Slapd, require_slapd

# OpenLDAP's names where they differ from AD's defaults; sAMAccountName, memberOf and
# userAccountControl (bit 0x2) stay AD's, carried by the test schema in tests/slapd.py.
OPENLDAP_MAPPING = {
    **AD_MAPPING,
    "user_filter": "(objectClass=inetOrgPerson)",
    "group_filter": "(objectClass=groupOfNames)",
    "id": "entryUUID",
    "group_id": "entryUUID",
}


# Generators for the test modules' fixtures (``yield from running_slapd()``): importing
# fixtures themselves would shadow them in every test's parameters.


def running_slapd() -> Iterator[Slapd]:
    server = Slapd(require_slapd()).start()
    yield server
    server.stop()


def running_gws() -> Iterator[google_directory.GoogleDirectorySandbox]:
    # The org units the directory tests' people sit in: the sandbox, as Google, refuses others.
    server = google_directory.start(
        domains=["example.com"], org_units=["/Engineering", "/Staff/Research", "/Staff/Sales"]
    )
    yield server
    server.shutdown()


def running_idp() -> Iterator[scim.ScimSandbox]:
    server = scim.start()
    yield server
    server.shutdown()


def ldap_source(slapd: Slapd, *, page_size: int = 2, **mapping: str) -> IdentitySource:
    return services.create_source(
        name="Corp AD",
        kind=IdentitySource.Kind.LDAP,
        ldap_url=slapd.url,
        ldap_bind_dn=READER_DN,
        bind_password=READER_PASSWORD,
        ldap_base_dn=BASE_DN,
        ldap_mapping={**OPENLDAP_MAPPING, **mapping},
        page_size=page_size,
    )


def gws_platform(
    gws: google_directory.GoogleDirectorySandbox, idp: scim.ScimSandbox | None = None
) -> Platform:
    provider = None
    if idp is not None:
        provider = create_identity_provider(
            name="Sandbox IdP", scim_base_url=idp.base_url, token=idp.bearer_token
        )
    return create_platform(
        name="Sandbox Workspace",
        kind=Platform.Kind.GOOGLE_WORKSPACE,
        identity_provider=provider,
        primary_domain="example.com",
        admin_email="admin@example.com",
        api_endpoint=gws.base_url,
        service_account_key=gws.issue_key(),
    )


def gws_source(platform: Platform, *, page_size: int = 500) -> IdentitySource:
    return services.create_source(
        name="Workspace directory",
        kind=IdentitySource.Kind.GOOGLE_WORKSPACE,
        platform=platform,
        page_size=page_size,
    )


def sync(source: IdentitySource, *, force: bool = False) -> Job:
    """Queue a sync as "Sync now" does and run it in-process through the engine's runner."""
    return deliver(services.request_sync(source, actor=None, force=force))


def result(job: Job) -> dict[str, Any]:
    assert job.result is not None, job.error_message
    return dict(job.result)
