"""Job handlers that act on one identity; importing this package registers them."""

from identities.handlers import create_domain_user, provision_sso_user

__all__ = ["create_domain_user", "provision_sso_user"]
