"""PAM pages and the PAM API: check-out, check-in, reveal, "My sessions"."""

from django.urls import path

from pam import views
from web.api.main import api_path

app_name = "pam"

urlpatterns = [
    path("sessions/", views.my_sessions, name="my-sessions"),
    path("sessions/<int:session_id>/checkin/", views.check_in, name="check-in"),
    path("sessions/<int:session_id>/reveal/", views.reveal, name="reveal"),
    path("identities/<int:identity_id>/checkout/", views.check_out, name="check-out"),
    path(
        "identities/<int:identity_id>/rotated-by-hand/",
        views.record_manual_rotation,
        name="record-rotation",
    ),
    api_path("identities/<int:identity_id>/checkout/", "api-check-out"),
    api_path("sessions/<int:session_id>/checkin/", "api-check-in"),
    api_path("sessions/<int:session_id>/reveal/", "api-reveal"),
]
