"""API: ``path("api/cronofy/", include("django_cronofy_conferencing.api.urls"))``. (Issue 4.)"""

from rest_framework.routers import DefaultRouter

router = DefaultRouter()
urlpatterns = router.urls
