"""The audit trail page and its API."""

from django.urls import path

from trail import views
from web.api.main import api_path

app_name = "trail"

urlpatterns = [
    path("settings/audit-trail/", views.entry_list, name="list"),
    api_path("audit-trail/", "api-list"),
]
