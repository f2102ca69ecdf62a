"""Who may use the API.

The permission classes come from ``CRONOFY_CONFERENCING["API_PERMISSION_CLASSES"]``
(dotted paths or classes; default ``IsAuthenticated``), read on every request.
*What* a user sees is decided separately by the viewsets' ``scope_queryset``
(their own accounts and profiles): override it in a subclass to change that.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string
from rest_framework.permissions import BasePermission

from ..conf import SETTINGS_NAME, app_settings

SETTING = f"{SETTINGS_NAME}['API_PERMISSION_CLASSES']"


def api_permission_classes() -> list[type[BasePermission]]:
    """The configured permission classes, imported."""
    entries = app_settings.API_PERMISSION_CLASSES
    if isinstance(entries, str) or not isinstance(entries, list | tuple):
        raise ImproperlyConfigured(f"{SETTING} must be a list of dotted paths to classes.")
    classes = []
    for index, entry in enumerate(entries):
        if isinstance(entry, str):
            try:
                entry = import_string(entry)
            except ImportError as exc:
                raise ImproperlyConfigured(
                    f"{SETTING}[{index}]: cannot import {entry!r} ({exc})."
                ) from None
        if not isinstance(entry, type):
            raise ImproperlyConfigured(f"{SETTING}[{index}] must be a permission class.")
        classes.append(entry)
    return classes
