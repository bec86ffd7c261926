"""Policy and violation pages, and the violations API."""

from django.urls import path

from policies import views
from web.api.main import api_path

app_name = "policies"

urlpatterns = [
    path("policies/", views.policy_list, name="list"),
    path("policies/new/", views.policy_edit, name="create"),
    path("policies/<int:policy_id>/", views.policy_edit, name="edit"),
    path("policies/violations/", views.violation_list, name="violations"),
    path(
        "policies/violations/<int:violation_id>/approve/",
        views.violation_decide,
        {"decision": "approve"},
        name="approve",
    ),
    path(
        "policies/violations/<int:violation_id>/dismiss/",
        views.violation_decide,
        {"decision": "dismiss"},
        name="dismiss",
    ),
    path(
        "policies/violations/<int:violation_id>/retry/",
        views.violation_retry,
        name="retry",
    ),
    api_path("violations/", "api-list"),
    api_path("policies/", "api-policies"),
    api_path("policies/<int:policy_id>/", "api-policy"),
    api_path("violations/<int:violation_id>/approve/", "api-approve"),
    api_path("violations/<int:violation_id>/dismiss/", "api-dismiss"),
    api_path("violations/<int:violation_id>/retry/", "api-retry"),
]
