"""SAML single sign-on of AccessHive's own users (AccessHive as the service provider)."""
