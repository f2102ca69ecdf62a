"""The example site's URLs: the app's browser flow and API, the admin, the API docs."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerView,
)

from . import schedule, views

urlpatterns = [
    # "My conferencing" is the app's packaged page (cronofy_conferencing:profiles).
    path(
        "",
        RedirectView.as_view(pattern_name="cronofy_conferencing:profiles", permanent=False),
        name="home",
    ),
    # A host's booking form with the app's conferencing picker (demo_site/schedule.py).
    path("schedule/", schedule.schedule, name="schedule"),
    path(
        "schedule/<int:account_id>/events/<str:event_id>/",
        schedule.event_detail,
        name="event_detail",
    ),
    # The demo's simulated Cronofy controls (404 unless `manage.py demo` runs).
    path("simulator/", views.simulator_page, name="simulator"),
    path("simulator/profile/", views.simulator_profile, name="simulator_profile"),
    path("simulator/push/", views.simulator_push, name="simulator_push"),
    # Login and logout (templates in demo_site/templates/registration/).
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    # django-cronofy-conferencing: the browser flow and the API.
    path("cronofy/", include("django_cronofy_conferencing.urls")),
    path("api/cronofy/", include("django_cronofy_conferencing.api.urls")),
    # The OpenAPI schema and its documentation.
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
]
