"""Asset pages, per-platform discovery ("Discover now"), and the assets API."""

from django.urls import path

from assets import api, views

app_name = "assets"

urlpatterns = [
    path("assets/", views.asset_list, name="list"),
    path("assets/<int:asset_id>/", views.asset_detail, name="detail"),
    path("assets/platforms/", views.platform_list, name="platform-list"),
    path("assets/platforms/<int:platform_id>/", views.platform_detail, name="platform"),
    path("assets/platforms/<int:platform_id>/discover/", views.discover, name="discover"),
    path("api/v1/assets/", api.asset_list, name="api-list"),
    path("api/v1/assets/<int:asset_id>/", api.asset_detail, name="api-detail"),
]
