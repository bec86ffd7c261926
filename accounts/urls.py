"""Settings > Users pages."""

from django.urls import path

from accounts import views
from web.api.main import api_path

app_name = "accounts"

urlpatterns = [
    path("settings/users/", views.user_list, name="users"),
    path("settings/users/<int:user_id>/role/", views.set_role, name="set-role"),
    path("settings/api-tokens/", views.api_token_list, name="tokens"),
    path("settings/api-tokens/<int:token_id>/revoke/", views.revoke_api_token, name="revoke-token"),
    path("settings/users/lockouts/<int:attempt_id>/unlock/", views.unlock, name="unlock"),
    api_path("tokens/", "api-tokens"),
    api_path("tokens/<int:token_id>/revoke/", "api-revoke-token"),
    api_path("lockouts/", "api-lockouts"),
    api_path("lockouts/<int:attempt_id>/unlock/", "api-unlock"),
]
