from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CronofyConferencingConfig(AppConfig):
    name = "django_cronofy_conferencing"
    label = "cronofy_conferencing"
    verbose_name = _("Cronofy conferencing")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401 - register the system checks
