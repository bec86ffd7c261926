"""Test data: users with or without permissions, Job rows in any state, platforms, identity
providers and identities, and valid form data per identity type."""

import itertools
import json
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import Permission, User
from django.utils import timezone

from identities.models import Identity, IdentityProvider, IdentityStatus, IdentityType, Platform
from jobs import lifecycle
from jobs.models import AttemptOutcome, Job, JobAttempt, JobEvent, JobStatus, JobType, Trigger

PASSWORD = "correct horse battery staple"


def make_user(
    username: str = "user", *, perms: tuple[str, ...] = (), superuser: bool = False
) -> User:
    """A user holding exactly ``perms`` ("app_label.codename"), or a superuser."""
    if superuser:
        return User.objects.create_superuser(username, f"{username}@example.com", PASSWORD)
    user = User.objects.create_user(username, f"{username}@example.com", PASSWORD)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


def make_viewer(username: str = "viewer") -> User:
    return make_user(username, perms=("jobs.view_job",))


def make_retrier(username: str = "retrier") -> User:
    return make_user(username, perms=("jobs.view_job", "jobs.retry_job"))


def make_job(
    *,
    job_type: str = JobType.DIRECTORY_SYNC,
    status: str = JobStatus.COMPLETED,
    subject_label: str = "ada@example.com",
    triggered_by: User | None = None,
    trigger: str = Trigger.USER,
    params: dict[str, Any] | None = None,
    result: dict[str, Any] | None = None,
    attempts: int | None = None,
    created_at: datetime | None = None,
    **fields: Any,
) -> Job:
    """A job as the engine would have left it in ``status``, with matching attempts and counters.

    Written straight through the ORM: enqueue() refuses secret-looking params, and tests need
    rows that a careless writer (or an old version) could have left behind.
    """
    now = timezone.now()
    created_at = created_at or now - timedelta(minutes=5)
    started = None if status == JobStatus.PENDING else created_at + timedelta(seconds=2)
    finished = status in (JobStatus.COMPLETED, JobStatus.FAILED)
    if attempts is None:
        attempts = 0 if status == JobStatus.PENDING else 1
    defaults: dict[str, Any] = {
        "started_at": started,
        "completed_at": created_at + timedelta(seconds=9.5) if finished else None,
        "next_attempt_at": now + timedelta(seconds=40) if status == JobStatus.RETRYING else None,
        "result": {"ok": True} if result is None and status == JobStatus.COMPLETED else result,
    }
    if status in (JobStatus.FAILED, JobStatus.RETRYING):
        defaults.update(
            error_class="jobs.errors.TransientError",
            error_message="Google Workspace rejected user ada@example.com: 503 Backend Error",
            error_traceback='Traceback (most recent call last):\n  File "handler.py", line 7\n'
            "jobs.errors.TransientError: 503 Backend Error\n",
        )
    defaults.update(fields)
    job = Job.objects.create(
        job_type=job_type,
        status=status,
        subject_label=subject_label,
        subject_id="42" if subject_label else "",
        trigger=trigger,
        triggered_by=triggered_by,
        trigger_label=triggered_by.get_username() if triggered_by else "",
        params=params if params is not None else {"user": subject_label},
        created_at=created_at,
        attempt_count=attempts,
        retries=max(attempts - 1, 0),
        **defaults,
    )
    lifecycle.shift_counts(job_type, {status: +1})
    for number in range(1, attempts + 1):
        make_attempt(job, number, last=number == attempts)
    return job


def make_attempt(job: Job, number: int, *, last: bool) -> JobAttempt:
    """Attempt ``number`` of ``job``; earlier attempts failed and waited, the last one matches
    the job's status."""
    started = (job.started_at or job.created_at) + timedelta(seconds=20 * (number - 1))
    outcome: str = AttemptOutcome.FAILED
    if last and job.status == JobStatus.RUNNING:
        outcome = AttemptOutcome.RUNNING
    elif last and job.status == JobStatus.COMPLETED:
        outcome = AttemptOutcome.SUCCEEDED
    failed = outcome == AttemptOutcome.FAILED
    finished = None if outcome == AttemptOutcome.RUNNING else started + timedelta(seconds=1.5)
    waits = finished is not None and failed and (not last or job.status == JobStatus.RETRYING)
    return JobAttempt.objects.create(
        job=job,
        number=number,
        retries=number - 1,
        worker=f"celery@worker-{number}",
        started_at=started,
        finished_at=finished,
        outcome=outcome,
        error_class="jobs.errors.TransientError" if failed else "",
        error_message=f"attempt {number}: 503 Backend Error" if failed else "",
        next_attempt_at=finished + timedelta(seconds=10 * 2 ** (number - 1))
        if waits and finished
        else None,
    )


def make_jobs(count: int, **kwargs: Any) -> list[Job]:
    return [make_job(**kwargs) for _ in range(count)]


def make_event(job: Job, kind: str, *, actor: User | None = None, message: str = "") -> JobEvent:
    return JobEvent.objects.create(job=job, kind=kind, actor=actor, message=message)


# --- identities, platforms, identity providers ----------------------------------------------
IDENTITY_ADMIN_PERMS = (
    "identities.view_identity",
    "identities.add_identity",
    "identities.view_platform",
    "identities.add_platform",
    "identities.change_platform",
    "identities.view_identityprovider",
    "identities.add_identityprovider",
    "identities.change_identityprovider",
    "jobs.view_job",
)
_sequence = itertools.count(1)


def make_identity_admin(username: str = "idadmin") -> User:
    """Everything the identity, platform and identity-provider pages ask for, and the jobs."""
    return make_user(username, perms=IDENTITY_ADMIN_PERMS)


def make_identity_viewer(username: str = "idviewer") -> User:
    return make_user(
        username,
        perms=(
            "identities.view_identity",
            "identities.view_platform",
            "identities.view_identityprovider",
        ),
    )


def make_identity_provider(name: str = "", **fields: Any) -> IdentityProvider:
    """A SCIM provider whose token reference points at a vault path nothing wrote (no test
    here reads it)."""
    name = name or f"IdP {next(_sequence)}"
    fields.setdefault("scim_base_url", "https://idp.example.com/scim/v2")
    fields.setdefault("token_ref", "vault:identity-providers/0/scim-token#1")
    return IdentityProvider.objects.create(name=name, **fields)


def make_platform(
    name: str = "",
    *,
    kind: str = Platform.Kind.GOOGLE_WORKSPACE,
    identity_provider: IdentityProvider | None = None,
    with_identity_provider: bool = True,
    **fields: Any,
) -> Platform:
    """A platform; Google Workspace on example.com with an identity provider by default."""
    name = name or f"Platform {next(_sequence)}"
    if identity_provider is None and with_identity_provider:
        identity_provider = make_identity_provider(f"{name} IdP")
    if kind == Platform.Kind.GOOGLE_WORKSPACE:
        fields.setdefault("primary_domain", "example.com")
        fields.setdefault("admin_email", "admin@example.com")
        fields.setdefault("service_account_key_ref", "vault:platforms/0/service-account-key#1")
    return Platform.objects.create(
        name=name, kind=kind, identity_provider=identity_provider, **fields
    )


def make_identity(
    *,
    platform: Platform | None = None,
    identity_type: str = IdentityType.HUMAN_INTERACTIVE,
    status: str = IdentityStatus.PROVISIONED,
    login: str = "",
    created_by: User | None = None,
    **fields: Any,
) -> Identity:
    """An identity row straight through the ORM: no jobs, no vault write."""
    number = next(_sequence)
    login = login or f"person{number}@example.com"
    fields.setdefault("display_name", f"Person {number}")
    return Identity.objects.create(
        platform=platform or make_platform(),
        identity_type=identity_type,
        status=status,
        login=login,
        created_by=created_by,
        **fields,
    )


FAKE_PEM_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"


def service_account_key(secret: str = FAKE_PEM_BODY, **fields: Any) -> dict[str, Any]:
    """A Google service-account JSON key whose PEM body is ``secret`` (not a real key: the
    forms check the shape, nothing here signs with it)."""
    key: dict[str, Any] = {
        "type": "service_account",
        "project_id": "accesshive-tests",
        "private_key_id": "0123456789abcdef",
        "private_key": f"-----BEGIN PRIVATE KEY-----\n{secret}\n-----END PRIVATE KEY-----\n",
        "client_email": "robot@accesshive-tests.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    key.update(fields)
    return key


def identity_form_data(identity_type: str, platform: Platform, secret: str) -> dict[str, Any]:
    """Valid form (and API) fields for one identity of ``identity_type`` on ``platform``;
    ``secret`` is the credential for the types that carry one."""
    data: dict[str, dict[str, Any]] = {
        IdentityType.HUMAN_INTERACTIVE: {
            "given_name": "Ada",
            "family_name": "Lovelace",
            "email": f"ada@{platform.primary_domain or 'elsewhere.org'}",
            "org_unit_path": "/Engineering",
        },
        IdentityType.SHARED_CREDENTIAL_MANAGED: {
            "email": f"ops-shared@{platform.primary_domain}",
            "display_name": "Ops shared mailbox",
        },
        IdentityType.SHARED_CREDENTIAL_EXTERNAL: {
            "username": "ops-bot",
            "password": secret,
            "display_name": "Ops bot",
        },
        IdentityType.SERVICE_ACCOUNT: {
            "json_key": json.dumps(service_account_key(secret)),
            "display_name": "CI robot",
        },
        IdentityType.API_KEY: {"name": "ci-deploy", "api_key": secret},
        IdentityType.OAUTH_CLIENT: {
            "client_id": "portal-client-123",
            "client_secret": secret,
            "display_name": "Portal",
        },
    }
    return {"platform": platform.pk, **data[identity_type]}


# --- privileged access (pam) ----------------------------------------------------------------
PAM_USER_PERMS = ("identities.view_identity", "pam.check_out_credential")
PAM_ADMIN_PERMS = (
    *PAM_USER_PERMS,
    "pam.check_in_any_session",
    "pam.record_manual_rotation",
    "jobs.view_job",
)
EXTERNAL_PASSWORD = "ext3rnal-Pa55word-0c1e"


def make_pam_user(username: str = "operator") -> User:
    """Can see identities, check shared credentials out and reveal their password."""
    return make_user(username, perms=PAM_USER_PERMS)


def make_pam_admin(username: str = "pamadmin") -> User:
    """Also checks in anyone's session and records rotations by hand."""
    return make_user(username, perms=PAM_ADMIN_PERMS)


def make_sandbox_platform(server: Any, name: str = "Sandbox Workspace") -> Platform:
    """A Google Workspace platform served by a sandbox.google_directory server, its
    service-account key in the vault."""
    from identities.services import create_platform

    return create_platform(
        name=name,
        kind=Platform.Kind.GOOGLE_WORKSPACE,
        primary_domain="example.com",
        admin_email="admin@example.com",
        api_endpoint=server.base_url,
        service_account_key=server.issue_key(),
    )


def make_managed_credential(platform: Platform, login: str = "shared-ops@example.com") -> Identity:
    """A managed shared credential whose create_domain_user job has run in this process, so
    its Google user exists with the initial password the vault holds."""
    from identities.services import IdentityInput, create_identity
    from tests.inline import deliver

    identity = create_identity(
        IdentityInput(
            identity_type=IdentityType.SHARED_CREDENTIAL_MANAGED,
            platform=platform,
            display_name="Ops shared",
            login=login,
            given_name="Ops",
            family_name="Shared",
        ),
        actor=None,
    )
    job = Job.objects.get(subject_id=str(identity.pk), job_type=JobType.CREATE_DOMAIN_USER)
    assert deliver(job).status == JobStatus.COMPLETED, job.error_message
    identity.refresh_from_db()
    return identity


def make_external_credential(
    platform: Platform, username: str = "ops-bot", password: str = EXTERNAL_PASSWORD
) -> Identity:
    """An external shared credential: its username and password straight into the vault."""
    from identities.services import IdentityInput, create_identity

    return create_identity(
        IdentityInput(
            identity_type=IdentityType.SHARED_CREDENTIAL_EXTERNAL,
            platform=platform,
            display_name="Ops bot",
            login=username,
            secret={"username": username, "password": password},
        ),
        actor=None,
    )


# --- CSV imports ----------------------------------------------------------------------------


def import_csv(rows: list[dict[str, str]], *, columns: tuple[str, ...] | None = None) -> bytes:
    """An import file: the documented header (or ``columns``) and one line per row dict,
    quoted as a spreadsheet would quote it."""
    import csv
    import io

    from imports.csvfile import COLUMNS

    header = columns or COLUMNS
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(name, "") for name in header])
    return text.getvalue().encode()


def import_row(
    identity_type: str, platform: Platform, secret: str, /, **cells: str
) -> dict[str, str]:
    """One valid import row of ``identity_type`` (the identity form's own fields), ``secret``
    as its credential; ``cells`` override or add cells."""
    data = identity_form_data(identity_type, platform, secret)
    data.pop("platform")
    return {"type": str(identity_type), "platform": platform.name, **data, **cells}


# --- admin audit trail ----------------------------------------------------------------------


def make_trail_entry(action: str = "identity.created", **fields: Any) -> Any:
    """A trail entry straight through the ORM (the read side's tests need rows of any age,
    source and address); ``actor`` sets the actor's name too."""
    from trail.models import TrailEntry

    actor = fields.get("actor")
    if actor is not None:
        fields.setdefault("actor_name", actor.get_username())
    fields.setdefault("source", "web")
    return TrailEntry.objects.create(action=action, **fields)
