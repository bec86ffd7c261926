"""The audit trail page and its API."""

from django.urls import path

from trail import api, views

app_name = "trail"

urlpatterns = [
    path("settings/audit-trail/", views.entry_list, name="list"),
    path("api/v1/audit-trail/", api.entry_list, name="api-list"),
]
