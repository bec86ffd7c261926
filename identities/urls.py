"""Identity, platform and identity-provider pages, and the identities API."""

from django.urls import path

from identities import views
from web.api.main import api_path

app_name = "identities"

urlpatterns = [
    path("identities/", views.identity_list, name="list"),
    path("identities/new/", views.identity_choose_type, name="choose-type"),
    path("identities/new/<str:identity_type>/", views.identity_create, name="create"),
    path("identities/<int:identity_id>/", views.identity_detail, name="detail"),
    path("platforms/", views.platform_list, name="platform-list"),
    path("platforms/new/", views.platform_create, name="platform-create"),
    path("platforms/<int:platform_id>/edit/", views.platform_edit, name="platform-edit"),
    path("identity-providers/", views.provider_list, name="provider-list"),
    path("identity-providers/new/", views.provider_create, name="provider-create"),
    path("identity-providers/<int:provider_id>/edit/", views.provider_edit, name="provider-edit"),
    api_path("identities/", "api-list"),
    api_path("identities/<int:identity_id>/", "api-detail"),
    api_path("platforms/", "api-platforms"),
    api_path("platforms/<int:platform_id>/", "api-platform"),
    api_path("identity-providers/", "api-providers"),
    api_path("identity-providers/<int:provider_id>/", "api-provider"),
]
