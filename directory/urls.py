"""Directory pages (sources, their rule and runs, events) and the directory API."""

from django.urls import path

from directory import views
from web.api.main import api_path

app_name = "directory"

urlpatterns = [
    path("directory/", views.source_list, name="source-list"),
    path("directory/sources/new/<str:kind>/", views.source_create, name="source-create"),
    path("directory/sources/<int:source_id>/", views.source_detail, name="source-detail"),
    path("directory/sources/<int:source_id>/edit/", views.source_edit, name="source-edit"),
    path("directory/sources/<int:source_id>/sync/", views.source_sync, name="source-sync"),
    path("directory/sources/<int:source_id>/rule/", views.rule_edit, name="rule-edit"),
    path("directory/runs/<int:run_id>/", views.run_detail, name="run-detail"),
    path("directory/events/", views.event_list, name="event-list"),
    path("directory/events/<int:event_id>/", views.event_detail, name="event-detail"),
    api_path("directory/sources/", "api-sources"),
    api_path("directory/sources/<int:source_id>/", "api-source"),
    api_path("directory/sources/<int:source_id>/sync/", "api-sync"),
    api_path("directory/sources/<int:source_id>/rule/", "api-rule"),
    api_path("directory/events/", "api-events"),
]
