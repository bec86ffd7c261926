"""SAML single sign-on routes."""

from django.urls import path

from sso import views

app_name = "sso"

urlpatterns = [
    path("sso/saml/metadata/", views.metadata, name="metadata"),
    path("sso/saml/login/", views.sign_in, name="login"),
    path("sso/saml/acs/", views.acs, name="acs"),
    path("sso/saml/logout/", views.sign_out, name="logout"),
    path("sso/saml/sls/", views.single_logout, name="sls"),
    path("settings/sso/", views.settings_page, name="settings"),
]
