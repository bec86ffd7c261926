"""Audit log pages, per-platform ingestion settings, and the audit-events API."""

from django.urls import path

from audit import views
from web.api.main import api_path

app_name = "audit"

urlpatterns = [
    path("audit/", views.event_list, name="list"),
    path("audit/<int:event_id>/", views.event_detail, name="detail"),
    path("audit/platforms/", views.platform_list, name="platform-list"),
    path("audit/platforms/<int:platform_id>/", views.platform_settings, name="platform"),
    path("audit/platforms/<int:platform_id>/ingest/", views.ingest_now, name="ingest"),
    api_path("audit-events/", "api-list"),
    api_path("audit-events/<int:event_id>/", "api-detail"),
    api_path("audit/platforms/<int:platform_id>/ingest/", "api-ingest"),
]
