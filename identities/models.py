"""Platform, IdentityProvider and Identity; secrets are only ever vault references here."""

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.urls import reverse
from django.utils import timezone


class IdentityType(models.TextChoices):
    HUMAN_INTERACTIVE = "human_interactive", "Human Interactive"
    SHARED_CREDENTIAL_MANAGED = "shared_credential_managed", "Shared Credential - managed"
    SHARED_CREDENTIAL_EXTERNAL = "shared_credential_external", "Shared Credential - external"
    SERVICE_ACCOUNT = "service_account", "Service Account"
    API_KEY = "api_key", "API Key"
    OAUTH_CLIENT = "oauth_client", "OAuth Client"


# Types whose secret goes straight into the vault: no background job, provisioned at once.
CREDENTIALS_ONLY_TYPES = frozenset(
    {
        IdentityType.SHARED_CREDENTIAL_EXTERNAL,
        IdentityType.SERVICE_ACCOUNT,
        IdentityType.API_KEY,
        IdentityType.OAUTH_CLIENT,
    }
)


class IdentityStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PROVISIONING = "provisioning", "Provisioning"
    PROVISIONED = "provisioned", "Provisioned"
    FAILED = "failed", "Failed"


class IdentityProvider(models.Model):
    """A SCIM 2.0 identity provider; its bearer token lives in the vault."""

    name = models.CharField(max_length=100, unique=True)
    scim_base_url = models.URLField("SCIM base URL", max_length=500)
    token_ref = models.CharField(max_length=300, blank=True, help_text="Vault reference")
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.name


class Platform(models.Model):
    class Kind(models.TextChoices):
        GOOGLE_WORKSPACE = "google_workspace", "Google Workspace"
        MICROSOFT_365 = "microsoft_365", "Microsoft 365"
        AWS = "aws", "Amazon Web Services"
        GITHUB = "github", "GitHub"
        OTHER = "other", "Other"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    identity_provider = models.ForeignKey(
        IdentityProvider, null=True, blank=True, on_delete=models.PROTECT, related_name="platforms"
    )
    # Google Workspace only.
    primary_domain = models.CharField(max_length=253, blank=True)
    customer_id = models.CharField(max_length=64, blank=True)
    admin_email = models.EmailField(blank=True, help_text="The admin the service account acts as")
    service_account_key_ref = models.CharField(max_length=300, blank=True)
    api_endpoint = models.URLField(
        blank=True, help_text="Leave empty for Google; set for the sandbox or a proxy"
    )
    # Every worker's calls to this platform share one token bucket (jobs.ratelimit). Empty:
    # the kind's default from settings.RATE_LIMITS; 0 requests a second: no limit.
    rate_limit_per_second = models.FloatField(
        "rate limit (requests a second)",
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
    )
    rate_limit_burst = models.PositiveIntegerField(
        "burst (requests)", null=True, blank=True, validators=[MinValueValidator(1)]
    )
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.name

    @property
    def is_google_workspace(self) -> bool:
        return self.kind == self.Kind.GOOGLE_WORKSPACE


class Identity(models.Model):
    identity_type = models.CharField(max_length=32, choices=IdentityType.choices)
    platform = models.ForeignKey(Platform, on_delete=models.PROTECT, related_name="identities")
    display_name = models.CharField(max_length=200)
    # The primary email for human and managed identities; the username, key name or client
    # id for credentials-only types. Stored lower-cased when it is an email.
    login = models.CharField(max_length=320)
    given_name = models.CharField(max_length=100, blank=True)
    family_name = models.CharField(max_length=100, blank=True)
    org_unit_path = models.CharField(max_length=300, blank=True)
    status = models.CharField(
        max_length=16, choices=IdentityStatus.choices, default=IdentityStatus.PENDING
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    gws_user_id = models.CharField("Google Workspace user id", max_length=64, blank=True)
    idp_user_id = models.CharField("identity provider user id", max_length=128, blank=True)
    secret_ref = models.CharField(max_length=300, blank=True, help_text="Vault reference")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "identities"
        constraints = [
            models.UniqueConstraint(
                fields=["platform", "login"], name="identity_login_per_platform"
            )
        ]
        indexes = [
            models.Index(fields=["status", "-id"], name="identity_status_newest"),
            models.Index(fields=["identity_type", "-id"], name="identity_type_newest"),
            models.Index(fields=["platform", "-id"], name="identity_platform_newest"),
        ]

    def __str__(self) -> str:
        return f"{self.display_name} <{self.login}>"

    def get_absolute_url(self) -> str:
        return reverse("identities:detail", args=[self.pk])

    @property
    def vault_path(self) -> str:
        return f"identities/{self.pk}/credential"

    @property
    def password_path(self) -> str:
        return f"identities/{self.pk}/password"
