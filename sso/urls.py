"""SAML single sign-on routes."""

from django.urls import path  # noqa: F401

app_name = "sso"

urlpatterns: list = []
