"""Admin audit trail page."""

from django.urls import path  # noqa: F401

app_name = "trail"

urlpatterns: list = []
