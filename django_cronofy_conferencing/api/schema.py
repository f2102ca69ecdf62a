"""drf-spectacular annotations, optional at runtime.

The API documents itself when drf-spectacular is installed; without it these
names are no-ops, so the app never requires it.
"""

from __future__ import annotations

from typing import Any

try:
    from drf_spectacular.types import OpenApiTypes
    from drf_spectacular.utils import (
        OpenApiParameter,
        OpenApiResponse,
        extend_schema,
        extend_schema_view,
    )

    HAS_SPECTACULAR = True
except ImportError:  # pragma: no cover - exercised in a subprocess test
    HAS_SPECTACULAR = False

    class _Placeholder:
        """Accepts any arguments and attribute lookups; documents nothing."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

        def __getattr__(self, name: str) -> None:
            return None

    OpenApiTypes = _Placeholder()  # type: ignore[assignment]
    OpenApiParameter = OpenApiResponse = _Placeholder  # type: ignore[assignment,misc]

    def extend_schema(*args: Any, **kwargs: Any):  # type: ignore[no-redef]
        def decorator(obj):
            return obj

        return decorator

    extend_schema_view = extend_schema  # type: ignore[assignment]

if HAS_SPECTACULAR:
    from drf_spectacular.extensions import OpenApiSerializerExtension

    class RequestComponentName(OpenApiSerializerExtension):
        """``ConferencingAuthorizationRequest`` whatever ``COMPONENT_SPLIT_REQUEST``:
        with it, drf-spectacular appends "Request" to request components, which made
        ``ConferencingAuthorizationRequestRequest``."""

        target_class = (
            "django_cronofy_conferencing.api.serializers.ConferencingAuthorizationRequestSerializer"
        )

        def get_name(self, auto_schema, direction):
            from drf_spectacular.settings import spectacular_settings

            if direction == "request" and spectacular_settings.COMPONENT_SPLIT_REQUEST:
                return "ConferencingAuthorization"  # + "Request", by drf-spectacular
            return "ConferencingAuthorizationRequest"


__all__ = [
    "HAS_SPECTACULAR",
    "OpenApiParameter",
    "OpenApiResponse",
    "OpenApiTypes",
    "extend_schema",
    "extend_schema_view",
]
