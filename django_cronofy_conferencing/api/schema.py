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

__all__ = [
    "HAS_SPECTACULAR",
    "OpenApiParameter",
    "OpenApiResponse",
    "OpenApiTypes",
    "extend_schema",
    "extend_schema_view",
]
