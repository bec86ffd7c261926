"""Directory pages (sources, their rule and runs, events) and the directory API."""

from django.urls import path

from directory import api, views

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
    path("api/v1/directory/sources/", api.source_collection, name="api-sources"),
    path("api/v1/directory/sources/<int:source_id>/", api.source_detail, name="api-source"),
    path("api/v1/directory/sources/<int:source_id>/sync/", api.source_sync, name="api-sync"),
    path("api/v1/directory/events/", api.event_collection, name="api-events"),
]
