"""Identity sources, their synced snapshot (users, groups, memberships), sync runs with their
staging rows, joiner/mover/leaver events and the rules that act on them."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from identities.models import Identity, Platform
from jobs.models import Job

# Active Directory's own names; an OpenLDAP source overrides them on its page.
AD_MAPPING: dict[str, str] = {
    "user_filter": "(&(objectCategory=person)(objectClass=user))",
    "group_filter": "(objectClass=group)",
    "id": "objectGUID",
    "username": "sAMAccountName",
    "email": "mail",
    "given_name": "givenName",
    "family_name": "sn",
    "display_name": "displayName",
    "department": "department",
    "title": "title",
    "manager": "manager",
    "group_id": "objectGUID",
    "group_name": "cn",
    "group_email": "mail",
    # Where memberships are read: "user" reads member_of on users (AD's memberOf), "group"
    # reads group_member on groups (groupOfNames' member).
    "membership_on": "user",
    "member_of": "memberOf",
    "group_member": "member",
    "disabled_attribute": "userAccountControl",
    # bitmask: disabled when int(value) & int(disabled_value); equals: value == disabled_value
    # (case-insensitive); present: disabled whenever the attribute is there.
    "disabled_match": "bitmask",
    "disabled_value": "2",
}
DISABLED_MATCHES = ("bitmask", "equals", "present")


def default_ldap_mapping() -> dict[str, str]:
    return dict(AD_MAPPING)


class IdentitySource(models.Model):
    """Where AccessHive learns who works at the company."""

    class Kind(models.TextChoices):
        GOOGLE_WORKSPACE = "google_workspace", "Google Workspace directory"
        LDAP = "ldap", "LDAP / Active Directory"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    enabled = models.BooleanField(default=True, help_text="Disabled sources are not synced")

    # Google Workspace: the platform whose service account reads the directory.
    platform = models.ForeignKey(
        Platform, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    gws_domain = models.CharField(
        "domain", max_length=253, blank=True, help_text="Empty: every domain of the customer"
    )

    # LDAP.
    ldap_url = models.CharField(
        "server URL", max_length=300, blank=True, help_text="ldap://host:389 or ldaps://host:636"
    )
    ldap_start_tls = models.BooleanField("StartTLS", default=False)
    # The server's certificate is always verified (there is no "ignore certificate"): against
    # this CA when given (a company's own PKI), else against the system's trusted CAs.
    ldap_ca_certificate = models.TextField(
        "CA certificate",
        blank=True,
        help_text="PEM of the CA that issued the server's certificate; empty: the system's CAs",
    )
    ldap_bind_dn = models.CharField("bind DN", max_length=500, blank=True)
    ldap_password_ref = models.CharField(max_length=300, blank=True, help_text="Vault reference")
    ldap_base_dn = models.CharField("base DN", max_length=500, blank=True)
    ldap_mapping = models.JSONField(default=default_ldap_mapping, blank=True)

    page_size = models.PositiveIntegerField(default=500)
    # 0: only when someone presses "Sync now".
    sync_interval_minutes = models.PositiveIntegerField(default=60)
    next_sync_at = models.DateTimeField(null=True, blank=True)

    # The sync holding the source right now (one at a time); see directory.sync.claim().
    running_run = models.ForeignKey(
        "SyncRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_run = models.ForeignKey(
        "SyncRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_synced_at = models.DateTimeField(null=True, blank=True)
    # Bumped by every committed sync; 0 means no snapshot yet (the next sync is the baseline).
    generation = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [("sync_identitysource", "Can start a directory sync")]
        indexes = [
            models.Index(
                fields=["next_sync_at"],
                name="directory_source_due",
                condition=Q(enabled=True, sync_interval_minutes__gt=0),
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def password_path(self) -> str:
        return f"directory-sources/{self.pk}/bind-password"

    def mapping(self) -> dict[str, str]:
        """The LDAP attribute mapping, AD defaults filled in for keys not set."""
        return {**AD_MAPPING, **{k: str(v) for k, v in (self.ldap_mapping or {}).items()}}


class SyncRun(models.Model):
    """One directory_sync attempt at a source, with its progress while it runs."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        COMMITTED = "committed", "Committed"
        BRAKED = "braked", "Stopped by the safety brake"
        FAILED = "failed", "Failed"

    source = models.ForeignKey(IdentitySource, on_delete=models.CASCADE, related_name="runs")
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    phase = models.CharField(max_length=32, default="starting")
    forced = models.BooleanField(default=False)
    baseline = models.BooleanField(default=False)
    started_at = models.DateTimeField(default=timezone.now)
    heartbeat_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    pages_read = models.PositiveIntegerField(default=0)
    users_read = models.PositiveIntegerField(default=0)
    groups_read = models.PositiveIntegerField(default=0)
    memberships_read = models.PositiveIntegerField(default=0)
    joiners = models.PositiveIntegerField(default=0)
    movers = models.PositiveIntegerField(default=0)
    leavers = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    # The first objects that could not be read: [{"object": ..., "message": ...}].
    problems = models.JSONField(default=list, blank=True)
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["source", "-id"], name="directory_run_source_newest")]

    def __str__(self) -> str:
        return f"sync #{self.pk} of {self.source_id} ({self.status})"

    @property
    def is_running(self) -> bool:
        return self.status == self.Status.RUNNING


class StagedUser(models.Model):
    """A user as the running sync read it; compared with the snapshot, then dropped.

    Staging is scratch, written as cheaply as the database allows: the tables are UNLOGGED
    on PostgreSQL (migration 0004; their rows never outlive a run, so writing them to the WAL
    too bought nothing); the run column has no foreign-key constraint (a check per staged row
    at each commit; drop_staging and the ORM's cascade remove the rows); and the only indexes
    are the ones that keep an id to one row per run: the comparison joins staging by hash
    (after ANALYZE), and every index costs a write per staged row.
    """

    run = models.ForeignKey(
        SyncRun, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    external_id = models.CharField(max_length=255)
    # What memberships and managers point at: the id (Google) or the normalised DN (LDAP).
    ref = models.CharField(max_length=1000)
    username = models.CharField(max_length=320)
    email = models.CharField(max_length=320)
    given_name = models.CharField(max_length=200)
    family_name = models.CharField(max_length=200)
    display_name = models.CharField(max_length=300)
    department = models.CharField(max_length=200)
    title = models.CharField(max_length=200)
    manager = models.CharField(max_length=1000)
    org_unit = models.CharField(max_length=500)
    disabled = models.BooleanField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "external_id"], name="directory_staged_user")
        ]

    def __str__(self) -> str:
        return self.username


class StagedGroup(models.Model):
    run = models.ForeignKey(
        SyncRun, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    external_id = models.CharField(max_length=255)
    ref = models.CharField(max_length=1000)
    name = models.CharField(max_length=300)
    email = models.CharField(max_length=320)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "external_id"], name="directory_staged_group")
        ]

    def __str__(self) -> str:
        return self.name


class StagedMembership(models.Model):
    """A (group, user) pair by their refs, as read; resolved to ids by a join."""

    run = models.ForeignKey(
        SyncRun, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    group_ref = models.CharField(max_length=1000)
    user_ref = models.CharField(max_length=1000)

    def __str__(self) -> str:
        return f"{self.user_ref} in {self.group_ref}"


class DirectoryUser(models.Model):
    """A user of a source as of its last committed sync, keyed by the source's immutable id."""

    # No index of its own: the (source, external_id) constraint's leads with it.
    source = models.ForeignKey(
        IdentitySource, on_delete=models.CASCADE, related_name="users", db_index=False
    )
    external_id = models.CharField(max_length=255)
    ref = models.CharField(max_length=1000)
    username = models.CharField(max_length=320)
    email = models.CharField(max_length=320)
    given_name = models.CharField(max_length=200, blank=True)
    family_name = models.CharField(max_length=200, blank=True)
    display_name = models.CharField(max_length=300, blank=True)
    department = models.CharField(max_length=200, blank=True)
    title = models.CharField(max_length=200, blank=True)
    manager = models.CharField(max_length=1000, blank=True)
    org_unit = models.CharField(max_length=500, blank=True)
    disabled = models.BooleanField(default=False)
    # Gone from the source; kept so its events and identity stay linked.
    deleted = models.BooleanField(default=False)
    identity = models.ForeignKey(
        Identity, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    first_seen_at = models.DateTimeField(default=timezone.now)
    # The source generation whose sync added the row: how a commit finds its new joiners.
    first_seen_generation = models.PositiveIntegerField(default=0)
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["username"]
        constraints = [
            models.UniqueConstraint(fields=["source", "external_id"], name="directory_user_id")
        ]
        indexes = [
            models.Index(fields=["source", "username"], name="directory_user_name"),
            models.Index(fields=["source", "ref"], name="directory_user_ref"),
        ]

    def __str__(self) -> str:
        return self.email or self.username

    @property
    def state(self) -> str:
        return "deleted" if self.deleted else "disabled" if self.disabled else "active"


class DirectoryGroup(models.Model):
    source = models.ForeignKey(
        IdentitySource, on_delete=models.CASCADE, related_name="groups", db_index=False
    )
    external_id = models.CharField(max_length=255)
    ref = models.CharField(max_length=1000)
    name = models.CharField(max_length=300)
    email = models.CharField(max_length=320, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["source", "external_id"], name="directory_group_id")
        ]

    def __str__(self) -> str:
        return self.email or self.name


class DirectoryMembership(models.Model):
    # source and group have no index of their own: (source, user) and (group, user) lead with
    # them, and a first sync writes each index once per membership.
    source = models.ForeignKey(
        IdentitySource, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    group = models.ForeignKey(
        DirectoryGroup, on_delete=models.CASCADE, related_name="memberships", db_index=False
    )
    user = models.ForeignKey(DirectoryUser, on_delete=models.CASCADE, related_name="memberships")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["group", "user"], name="directory_membership")
        ]
        indexes = [models.Index(fields=["source", "user"], name="directory_membership_user")]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.group_id}"


class EventKind(models.TextChoices):
    JOINER = "joiner", "Joiner"
    MOVER = "mover", "Mover"
    LEAVER = "leaver", "Leaver"


class DirectoryEvent(models.Model):
    """One joiner, mover or leaver found by a sync; its jml_automation job acts on it."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DONE = "done", "Done"
        DRY_RUN = "dry_run", "Dry run recorded"
        SKIPPED = "skipped", "Skipped (no rule)"
        FAILED = "failed", "Failed"

    source = models.ForeignKey(IdentitySource, on_delete=models.CASCADE, related_name="events")
    run = models.ForeignKey(SyncRun, null=True, on_delete=models.SET_NULL, related_name="events")
    user = models.ForeignKey(DirectoryUser, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=16, choices=EventKind.choices)
    # The user's email (or username) when the event was made: lists need no join.
    label = models.CharField(max_length=320)
    # {"department": ["Sales", "Research"], "groups": {"added": [...], "removed": [...]}, ...}
    changes = models.JSONField(default=dict, blank=True)
    # What the source's rule said it would do when the event was made (human-readable lines).
    planned_actions = models.JSONField(default=list, blank=True)
    # Dry run: what the job found it would do, given the state it saw. Else: what it did.
    dry_run_outcome = models.JSONField(default=list, blank=True)
    outcome = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["source", "-id"], name="directory_event_source_newest"),
            models.Index(fields=["kind", "-id"], name="directory_event_kind_newest"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.label}"


class JmlRule(models.Model):
    """What to do about a source's joiners, movers and leavers; edited by an admin."""

    source = models.OneToOneField(IdentitySource, on_delete=models.CASCADE, related_name="rule")
    platform = models.ForeignKey(
        Platform,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Joiners get a Human Interactive identity here; movers and leavers are "
        "updated here and at its identity provider",
    )
    dry_run = models.BooleanField(
        default=True, help_text="Record what would be done on each event, and do nothing"
    )
    on_joiner = models.BooleanField("act on joiners", default=True)
    on_mover = models.BooleanField("act on movers", default=True)
    on_leaver = models.BooleanField("act on leavers", default=True)
    login_domain = models.CharField(
        max_length=253,
        blank=True,
        help_text="Empty: the login is the directory email. Else the email's local part at "
        "this domain",
    )
    sync_groups = models.BooleanField(
        "adjust group memberships",
        default=True,
        help_text="Movers join and leave the platform's Google groups with the same email",
    )
    deactivate_accounts = models.BooleanField(
        "deactivate leavers' AccessHive accounts",
        default=True,
        help_text="A leaver whose email or user name is an AccessHive user's is deactivated "
        "there too: sessions ended, API tokens revoked, role removed",
    )
    run_as = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Leavers' PAM sessions are checked in as this user (who needs 'Can check "
        "in anyone's access session'); empty: as the session's holder",
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"rule of {self.source_id}"

    def acts_on(self, kind: str) -> bool:
        if kind == EventKind.JOINER:
            return self.on_joiner
        if kind == EventKind.MOVER:
            return self.on_mover
        return self.on_leaver
