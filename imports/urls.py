"""The import pages under /identities/import/ and the imports API."""

from django.urls import path

from imports import api, views

app_name = "imports"

urlpatterns = [
    path("identities/import/", views.upload, name="upload"),
    path("identities/import/template.csv", views.template_csv, name="template"),
    path("identities/import/<int:batch_id>/", views.detail, name="detail"),
    path("identities/import/<int:batch_id>/report.csv", views.report, name="report"),
    path("api/v1/imports/", api.import_collection, name="api-list"),
    path("api/v1/imports/<int:batch_id>/", api.import_detail, name="api-detail"),
    path("api/v1/imports/<int:batch_id>/report.csv", api.import_report, name="api-report"),
]
