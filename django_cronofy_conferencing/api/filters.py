"""List filters of the profile endpoints (both kinds): ``?provider_name=``,
``?profile_connected=true|false``, ``?account=<id>``."""

from __future__ import annotations

from rest_framework.filters import BaseFilterBackend

from .serializers import ConferencingProfileFilterSerializer


class ProfileFilter(BaseFilterBackend):
    """``?provider_name=``, ``?profile_connected=true|false``, ``?account=<id>``.

    Empty values are ignored; invalid ones answer 400.
    """

    serializer_class = ConferencingProfileFilterSerializer

    def filter_queryset(self, request, queryset, view):
        data = {
            name: request.query_params[name]
            for name in self.serializer_class().fields
            if request.query_params.get(name, "") != ""
        }
        if not data:
            return queryset
        serializer = self.serializer_class(data=data)
        serializer.is_valid(raise_exception=True)
        filters = serializer.validated_data
        if "provider_name" in filters:
            queryset = queryset.filter(provider_name=filters["provider_name"])
        if "profile_connected" in filters:
            queryset = queryset.filter(profile_connected=filters["profile_connected"])
        if "account" in filters:
            queryset = queryset.filter(account_id=filters["account"])
        return queryset

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": "provider_name",
                "required": False,
                "in": "query",
                "description": "Only this provider (zoom, ms_teams, go_to, ...).",
                "schema": {"type": "string"},
            },
            {
                "name": "profile_connected",
                "required": False,
                "in": "query",
                "description": "Only connected (true) or disconnected (false) profiles.",
                "schema": {"type": "boolean"},
            },
            {
                "name": "account",
                "required": False,
                "in": "query",
                "description": "Only the profiles of this linked account (its id).",
                "schema": {"type": "integer"},
            },
        ]


#: The name it had when only conferencing profiles were listed.
ConferencingProfileFilter = ProfileFilter
