"""SAML sign-in settings (one row) and the assertions already used to sign in."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.roles import Role

SINGLE_ROW_ID = 1


class SamlSettings(models.Model):
    """How AccessHive trusts one SAML identity provider to sign its own users in."""

    class DefaultRole(models.TextChoices):
        REFUSE = "", "Refuse the sign-in"
        VIEWER = Role.VIEWER.value, "Viewer"
        OPERATOR = Role.OPERATOR.value, "Operator"
        ADMIN = Role.ADMIN.value, "Admin"

    enabled = models.BooleanField(default=False)
    idp_entity_id = models.CharField("IdP entity ID", max_length=1024, blank=True)
    idp_sso_url = models.URLField("IdP sign-in URL", max_length=1024, blank=True)
    idp_slo_url = models.URLField("IdP sign-out URL", max_length=1024, blank=True)
    # One or more PEM certificates (several while the IdP rolls its key over); public.
    idp_x509_cert = models.TextField("IdP signing certificate", blank=True)
    email_attribute = models.CharField(max_length=200, default="email")
    first_name_attribute = models.CharField(max_length=200, default="firstName")
    last_name_attribute = models.CharField(max_length=200, default="lastName")
    groups_attribute = models.CharField(max_length=200, default="groups")
    admin_groups = models.JSONField(default=list, blank=True)
    operator_groups = models.JSONField(default=list, blank=True)
    viewer_groups = models.JSONField(default=list, blank=True)
    default_role = models.CharField(
        max_length=16, choices=DefaultRole.choices, default=DefaultRole.REFUSE, blank=True
    )
    allow_idp_initiated = models.BooleanField(default=False)
    # Off: the assertion itself must be signed. On: a signed Response (whose signature covers
    # the assertion inside it) is enough, as some IdPs sign only that.
    accept_signed_response = models.BooleanField(default=False)
    # AccessHive's own key pair as a service provider: it signs AuthnRequests, logout messages
    # and the metadata, and decrypts encrypted assertions. The private key is in the vault.
    sp_certificate = models.TextField("SP certificate", blank=True)
    sp_key_ref = models.CharField(max_length=300, blank=True, help_text="Vault reference")
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = "SAML settings"
        verbose_name_plural = "SAML settings"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(id=SINGLE_ROW_ID), name="sso_samlsettings_single_row"
            )
        ]

    def __str__(self) -> str:
        return "SAML single sign-on"

    @property
    def is_ready(self) -> bool:
        """Turned on, and knowing enough of the IdP to send users there and trust its answer."""
        return bool(
            self.enabled and self.idp_entity_id and self.idp_sso_url and self.idp_x509_cert.strip()
        )


class UsedAssertion(models.Model):
    """An assertion that signed someone in; the same one is never accepted twice. A row is
    useless once its assertion has expired, and is pruned then."""

    assertion_id = models.CharField(max_length=256, unique=True)
    not_on_or_after = models.DateTimeField(db_index=True)
    used_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.assertion_id
