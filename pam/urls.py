"""PAM pages and the PAM API: check-out, check-in, reveal, "My sessions"."""

from django.urls import path

from pam import api, views

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
    path("api/v1/identities/<int:identity_id>/checkout/", api.check_out, name="api-check-out"),
    path("api/v1/sessions/<int:session_id>/checkin/", api.check_in, name="api-check-in"),
    path("api/v1/sessions/<int:session_id>/reveal/", api.reveal, name="api-reveal"),
]
