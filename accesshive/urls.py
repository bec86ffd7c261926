"""Top-level URL map."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.utils.functional import lazy
from django.views.generic import RedirectView

from ops import views as ops_views
from web.api import problems
from web.api.main import root_patterns

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="jobs:list", permanent=False)),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # Browsers ask for /favicon.ico whatever the page's <link rel="icon"> says.
    path(
        "favicon.ico",
        RedirectView.as_view(url=lazy(static, str)("img/favicon.svg"), permanent=True),
        name="favicon",
    ),
    path("admin/", admin.site.urls),
    # HealthzMiddleware answers /healthz first; the route names it and serves it without that.
    path("healthz", ops_views.healthz, name="healthz"),
    path("metrics", ops_views.metrics_view, name="metrics"),
    path("", include("jobs.urls")),
    path("", include("identities.urls")),
    path("", include("pam.urls")),
    path("", include("imports.urls")),
    path("", include("audit.urls")),
    path("", include("assets.urls")),
    path("", include("directory.urls")),
    path("", include("policies.urls")),
    path("", include("trail.urls")),
    path("", include("sso.urls")),
    path("", include("accounts.urls")),
    path("api/v1/", include(root_patterns(), namespace="api")),
]

# Pages keep Django's error pages; under /api/ a crash outside the API's views is a problem too.
handler500 = problems.server_error_view
