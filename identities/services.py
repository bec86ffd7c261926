"""Domain operations on identities, platforms and identity providers; each one atomic."""

import json
from dataclasses import dataclass, field
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accesshive.bulk import copy_rows
from identities.models import (
    CREDENTIALS_ONLY_TYPES,
    Identity,
    IdentityProvider,
    IdentityStatus,
    IdentityType,
    Platform,
)
from jobs.models import ACTIVE_STATUSES, Job, JobStatus, JobType, Trigger
from jobs.services import JobRequest, enqueue, enqueue_many
from trail.services import changed_fields, record
from vault.backends import get_vault
from vault.base import SecretRef
from web.destinations import describe_moves

PROVISIONING_JOB_TYPES = (JobType.CREATE_DOMAIN_USER, JobType.PROVISION_SSO_USER)


class DuplicateIdentityError(ValueError):
    """An identity with this login already exists on the platform."""


@dataclass(frozen=True)
class IdentityInput:
    """What a form or the API hands over; ``secret`` goes to the vault and nowhere else."""

    identity_type: str
    platform: Platform
    display_name: str
    login: str
    given_name: str = ""
    family_name: str = ""
    org_unit_path: str = ""
    secret: dict[str, str] | None = field(default=None, repr=False)


def provisioning_jobs(identity_type: str, platform: Platform) -> list[str]:
    """The jobs an identity of this type needs on this platform (the product's rule)."""
    if identity_type in CREDENTIALS_ONLY_TYPES:
        return []
    if identity_type == IdentityType.HUMAN_INTERACTIVE:
        if platform.is_google_workspace:
            return [JobType.CREATE_DOMAIN_USER, JobType.PROVISION_SSO_USER]
        return [JobType.PROVISION_SSO_USER]
    if identity_type == IdentityType.SHARED_CREDENTIAL_MANAGED:
        return [JobType.CREATE_DOMAIN_USER]
    raise ValueError(f"unknown identity type {identity_type!r}")


def create_identity(data: IdentityInput, *, actor: Any, on_trail: bool = True) -> Identity:
    """Create an identity and start its path: a vault write for credentials-only types,
    provisioning jobs for the others. Nothing is kept if any step fails.

    A person's creation goes on the audit trail; ``on_trail=False`` for a CSV import's rows
    (the import is on it once), and AccessHive's own (JML, no actor) shows as its jobs.
    """
    try:
        with transaction.atomic():
            identity = new_identity(data, actor=actor)
            identity.save(force_insert=True)
            if on_trail and actor is not None:
                record(
                    "identity.created",
                    actor=actor,
                    target=identity,
                    type=data.identity_type,
                    platform=data.platform.name,
                )
            if data.identity_type in CREDENTIALS_ONLY_TYPES:
                if not data.secret:
                    raise ValueError("a credentials-only identity needs its secret")
                ref = get_vault().write(identity.vault_path, data.secret, cas=0)
                identity.secret_ref = str(ref)
                identity.status = IdentityStatus.PROVISIONED
                identity.save(update_fields=["secret_ref", "status"])
                return identity
            identity.status = IdentityStatus.PROVISIONING
            identity.save(update_fields=["status"])
            # In order: the SSO user points at the Google user, so it waits for it to exist.
            previous: list[Job] = []
            for job_type in provisioning_jobs(data.identity_type, data.platform):
                job = enqueue(
                    job_type,
                    subject=identity,
                    triggered_by=actor,
                    trigger=Trigger.USER,
                    after=previous,
                )
                previous = [job]
            return identity
    except IntegrityError as exc:
        if Identity.objects.filter(platform=data.platform, login=data.login).exists():
            raise DuplicateIdentityError(
                f"{data.login} already exists on {data.platform.name}"
            ) from exc
        raise


def new_identity(data: IdentityInput, *, actor: Any, **fields: Any) -> Identity:
    """The unsaved row an IdentityInput describes (one create, or one of a batch)."""
    return Identity(
        identity_type=data.identity_type,
        platform=data.platform,
        display_name=data.display_name,
        login=data.login,
        given_name=data.given_name,
        family_name=data.family_name,
        org_unit_path=data.org_unit_path,
        created_by=actor,
        **fields,
    )


def create_identities(inputs: list[IdentityInput], *, actor: Any) -> list[Identity]:
    """create_identity for many at once, off the trail (a CSV import's chunk; the import is
    on the trail once): one insert for the identities, one for their secrets in the vault,
    one for their provisioning jobs. All or nothing: an identity that exists already raises
    IntegrityError before any secret is written, and nothing is kept (callers look the logins
    up first)."""
    for data in inputs:
        if data.identity_type in CREDENTIALS_ONLY_TYPES and not data.secret:
            raise ValueError("a credentials-only identity needs its secret")
    if not inputs:
        return []
    now = timezone.now()
    identities = [
        new_identity(
            data,
            actor=actor,
            status=IdentityStatus.PROVISIONED
            if data.identity_type in CREDENTIALS_ONLY_TYPES
            else IdentityStatus.PROVISIONING,
            created_at=now,
            updated_at=now,
        )
        for data in inputs
    ]
    with transaction.atomic():
        with_secrets = [
            (identity, data.secret)
            for identity, data in zip(identities, inputs, strict=True)
            if data.secret is not None and data.identity_type in CREDENTIALS_ONLY_TYPES
        ]
        if connection.vendor == "postgresql":
            # The ids first, so each secret_ref (the first version at the identity's path) is
            # in the row as it is copied in, and the vault is written only once they are in.
            for identity, id_ in zip(identities, next_ids(len(identities)), strict=True):
                identity.pk = id_
            for identity, _ in with_secrets:
                identity.secret_ref = str(SecretRef(identity.vault_path, 1))
            copy_identities(identities)
        else:
            Identity.objects.bulk_create(identities)
        secrets = {identity.vault_path: secret for identity, secret in with_secrets}
        refs = get_vault().write_new(secrets)
        moved = []
        for (identity, _), ref in zip(with_secrets, refs, strict=True):
            if identity.secret_ref != str(ref):
                identity.secret_ref = str(ref)
                moved.append(identity)
        set_secret_refs(moved)
        jobs: list[JobRequest] = []
        for identity, data in zip(identities, inputs, strict=True):
            # In order, as create_identity: the SSO user waits for the Google user.
            for step, job_type in enumerate(provisioning_jobs(data.identity_type, data.platform)):
                jobs.append(
                    JobRequest(job_type, subject=identity, after=(len(jobs) - 1,) if step else ())
                )
        enqueue_many(jobs, triggered_by=actor, trigger=Trigger.USER)
    return identities


def next_ids(count: int) -> list[int]:
    """``count`` ids from the identities' sequence, as inserting that many rows would take."""
    table = Identity._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [table, count],
        )
        return [row[0] for row in cursor.fetchall()]


def copy_identities(identities: list[Identity]) -> None:
    """Insert new rows, ids included, with one COPY (PostgreSQL)."""
    fields = Identity._meta.concrete_fields
    names = [field.attname for field in fields]
    copy_rows(
        Identity._meta.db_table,
        [str(field.column) for field in fields],
        ([identity.__dict__[name] for name in names] for identity in identities),
    )


def set_secret_refs(identities: list[Identity]) -> None:
    """Store each identity's secret_ref: one UPDATE from a VALUES list on PostgreSQL, where
    bulk_update's CASE per row costs more to build than to run."""
    if not identities:
        return
    if connection.vendor != "postgresql":
        Identity.objects.bulk_update(identities, ["secret_ref"])
        return
    table = Identity._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS i SET secret_ref = v.ref "  # noqa: S608 - the name is ours
            f"FROM (VALUES {', '.join('(%s, %s)' for _ in identities)}) AS v(id, ref) "
            "WHERE i.id = v.id",
            [value for identity in identities for value in (identity.pk, identity.secret_ref)],
        )


def list_identity_jobs(identity: Identity) -> list[Job]:
    return list(
        Job.objects.filter(
            subject_type=ContentType.objects.get_for_model(Identity), subject_id=str(identity.pk)
        ).defer("params", "result", "error_traceback")
    )


def refresh_identity_status(identity_id: int) -> None:
    """Provisioning while any of its provisioning jobs is on its way (including after an
    admin's retry), else failed when one failed, provisioned when all completed."""
    identity = Identity.objects.select_for_update().filter(pk=identity_id).first()
    if identity is None or identity.identity_type in CREDENTIALS_ONLY_TYPES:
        return
    statuses = set(
        Job.objects.filter(
            subject_type=ContentType.objects.get_for_model(Identity),
            subject_id=str(identity_id),
            job_type__in=PROVISIONING_JOB_TYPES,
        ).values_list("status", flat=True)
    )
    if statuses & set(ACTIVE_STATUSES):
        # Still on its way: an admin's retry of the Google user will release the SSO user
        # that was "not run" (jobs.dependencies), so the identity is not failed meanwhile.
        status = IdentityStatus.PROVISIONING
    elif JobStatus.FAILED in statuses:
        status = IdentityStatus.FAILED
    elif statuses:
        status = IdentityStatus.PROVISIONED
    else:
        status = IdentityStatus.PROVISIONING
    if identity.status != status:
        Identity.objects.filter(pk=identity_id).update(status=status)


def set_service_account_key(platform: Platform, key: dict[str, Any]) -> None:
    """Store a Google Workspace platform's service-account key in the vault."""
    ref = get_vault().write(
        f"platforms/{platform.pk}/service-account-key", {"json": json.dumps(key)}
    )
    Platform.objects.filter(pk=platform.pk).update(service_account_key_ref=str(ref))
    platform.service_account_key_ref = str(ref)


def set_scim_token(provider: IdentityProvider, token: str) -> None:
    """Store an identity provider's SCIM bearer token in the vault."""
    ref = get_vault().write(f"identity-providers/{provider.pk}/scim-token", {"token": token})
    IdentityProvider.objects.filter(pk=provider.pk).update(token_ref=str(ref))
    provider.token_ref = str(ref)


# ``actor`` defaults to None (AccessHive itself) for the platform and provider services: the
# sandbox setup, benchmarks and tests create them without a person; the pages pass theirs.


@transaction.atomic
def create_platform(
    *, service_account_key: dict[str, Any] | None = None, actor: Any = None, **fields: Any
) -> Platform:
    platform = Platform.objects.create(**fields)
    if service_account_key is not None:
        set_service_account_key(platform, service_account_key)
    record(
        "platform.created",
        actor=actor,
        target=platform,
        kind=platform.kind,
        key_stored=service_account_key is not None,
    )
    return platform


@transaction.atomic
def update_platform(
    platform: Platform,
    *,
    service_account_key: dict[str, Any] | None = None,
    actor: Any = None,
    **fields: Any,
) -> Platform:
    """Change a platform's fields; a new key replaces the stored one (a new vault version)."""
    stored = Platform.objects.select_for_update().get(pk=platform.pk)
    changed = changed_fields(stored, fields)
    for name, value in fields.items():
        setattr(platform, name, value)
    platform.save()
    if service_account_key is not None:
        set_service_account_key(platform, service_account_key)
    if changed or service_account_key is not None:
        record(
            "platform.changed",
            actor=actor,
            target=platform,
            changed=changed,
            **describe_moves(stored, fields, ("api_endpoint",)),
            key_replaced=service_account_key is not None,
        )
    return platform


@transaction.atomic
def update_identity_provider(
    provider: IdentityProvider, *, token: str = "", actor: Any = None, **fields: Any
) -> IdentityProvider:
    """Change a provider's fields; a new token replaces the stored one."""
    stored = IdentityProvider.objects.select_for_update().get(pk=provider.pk)
    changed = changed_fields(stored, fields)
    for name, value in fields.items():
        setattr(provider, name, value)
    provider.save()
    if token:
        set_scim_token(provider, token)
    if changed or token:
        record(
            "identity_provider.changed",
            actor=actor,
            target=provider,
            changed=changed,
            **describe_moves(stored, fields, ("scim_base_url",)),
            token_replaced=bool(token),
        )
    return provider


@transaction.atomic
def create_identity_provider(*, token: str, actor: Any = None, **fields: Any) -> IdentityProvider:
    provider = IdentityProvider.objects.create(**fields)
    set_scim_token(provider, token)
    record("identity_provider.created", actor=actor, target=provider)
    return provider
