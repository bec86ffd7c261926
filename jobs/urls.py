"""Settings > Jobs pages and the jobs API."""

from django.urls import path

from jobs import api, views

app_name = "jobs"

urlpatterns = [
    path("settings/jobs/", views.job_list, name="list"),
    path("settings/jobs/charts/", views.job_charts, name="charts"),
    path("settings/jobs/<int:job_id>/", views.job_detail, name="detail"),
    path("settings/jobs/<int:job_id>/retry/", views.job_retry, name="retry"),
    path("settings/jobs/<int:job_id>/cancel/", views.job_cancel, name="cancel"),
    path("api/v1/jobs/", api.job_list, name="api-list"),
    path("api/v1/jobs/<int:job_id>/", api.job_detail, name="api-detail"),
    path("api/v1/jobs/<int:job_id>/retry/", api.job_retry, name="api-retry"),
    path("api/v1/jobs/<int:job_id>/cancel/", api.job_cancel, name="api-cancel"),
]
