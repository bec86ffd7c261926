"""Asset pages, per-platform discovery ("Discover now"), and the assets API."""

from django.urls import path

from assets import views
from web.api.main import api_path

app_name = "assets"

urlpatterns = [
    path("assets/", views.asset_list, name="list"),
    path("assets/<int:asset_id>/", views.asset_detail, name="detail"),
    path("assets/platforms/", views.platform_list, name="platform-list"),
    path("assets/platforms/<int:platform_id>/", views.platform_detail, name="platform"),
    path("assets/platforms/<int:platform_id>/discover/", views.discover, name="discover"),
    api_path("assets/", "api-list"),
    api_path("assets/<int:asset_id>/", "api-detail"),
    api_path("assets/platforms/<int:platform_id>/discover/", "api-discover"),
]
