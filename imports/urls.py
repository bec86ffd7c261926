"""The import pages under /identities/import/ and the imports API."""

from django.urls import path

from imports import views
from web.api.main import api_path

app_name = "imports"

urlpatterns = [
    path("identities/import/", views.upload, name="upload"),
    path("identities/import/template.csv", views.template_csv, name="template"),
    path("identities/import/<int:batch_id>/", views.detail, name="detail"),
    path("identities/import/<int:batch_id>/report.csv", views.report, name="report"),
    api_path("imports/", "api-list"),
    api_path("imports/<int:batch_id>/", "api-detail"),
    api_path("imports/<int:batch_id>/report.csv", "api-report"),
]
