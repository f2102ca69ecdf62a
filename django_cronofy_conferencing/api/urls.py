"""API: ``path("api/cronofy/", include("django_cronofy_conferencing.api.urls"))``.

URL names (namespace ``cronofy_conferencing_api``):

* ``conferencing-profile-list``, ``conferencing-profile-detail`` (``profile_id``)
* ``calendar-profile-list``, ``calendar-profile-detail`` (``profile_id``)
* ``account-list``, ``account-detail`` (``pk``), ``account-sync``,
  ``account-conferencing-authorization``, ``account-conferencing-choices``
"""

from rest_framework.routers import DefaultRouter

from .views import CalendarProfileViewSet, ConferencingProfileViewSet, LinkedAccountViewSet

app_name = "cronofy_conferencing_api"

router = DefaultRouter()
router.register(
    "conferencing-profiles", ConferencingProfileViewSet, basename="conferencing-profile"
)
router.register("calendar-profiles", CalendarProfileViewSet, basename="calendar-profile")
router.register("accounts", LinkedAccountViewSet, basename="account")

urlpatterns = router.urls
