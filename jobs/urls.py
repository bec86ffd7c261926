"""Settings > Jobs pages and the jobs API."""

from django.urls import path

from jobs import views
from web.api.main import api_path

app_name = "jobs"

urlpatterns = [
    path("settings/jobs/", views.job_list, name="list"),
    path("settings/jobs/charts/", views.job_charts, name="charts"),
    path("settings/jobs/<int:job_id>/", views.job_detail, name="detail"),
    path("settings/jobs/<int:job_id>/retry/", views.job_retry, name="retry"),
    path("settings/jobs/<int:job_id>/cancel/", views.job_cancel, name="cancel"),
    api_path("jobs/", "api-list"),
    api_path("jobs/<int:job_id>/", "api-detail"),
    api_path("jobs/<int:job_id>/retry/", "api-retry"),
    api_path("jobs/<int:job_id>/cancel/", "api-cancel"),
    api_path("jobs/retry/", "api-bulk-retry"),
    api_path("jobs/cancel/", "api-bulk-cancel"),
]
