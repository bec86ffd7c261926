"""URLs of the pam app."""

from django.urls import URLPattern

app_name = "pam"

urlpatterns: list[URLPattern] = []
