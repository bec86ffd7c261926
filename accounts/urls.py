"""Settings > Users pages."""

from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("settings/users/", views.user_list, name="users"),
    path("settings/users/<int:user_id>/role/", views.set_role, name="set-role"),
]
