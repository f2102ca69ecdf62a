"""The API's viewsets: the requesting user's conferencing profiles and linked accounts.

Customising in a host project
-----------------------------

* **Who may call it**: ``CRONOFY_CONFERENCING["API_PERMISSION_CLASSES"]`` (dotted
  paths, read per request), or ``permission_classes`` on a subclass.
* **What they see**: ``scope_queryset(request, queryset)`` limits every queryset
  (lists, details, actions) to the user's own rows; override it in a subclass,
  e.g. to let staff see everyone's::

      class StaffAccountViewSet(LinkedAccountViewSet):
          def scope_queryset(self, request, queryset):
              if request.user.is_staff:
                  return queryset
              return super().scope_queryset(request, queryset)

  and register the subclasses on your own router.
* **Pagination** follows ``REST_FRAMEWORK["DEFAULT_PAGINATION_CLASS"]``.
* The per-user budget of the actions that call Cronofy (sync, unlink,
  conferencing authorization; shared with the browser views):
  ``DEFAULT_THROTTLE_RATES["cronofy_sync"]``, else
  ``CRONOFY_CONFERENCING["API_SYNC_THROTTLE_RATE"]``.
"""

from __future__ import annotations

import dataclasses
import logging
import re

from django.db.models import F
from django.http import Http404
from django.urls import NoReverseMatch
from django.utils.translation import gettext_lazy as _
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import BaseParser
from rest_framework.response import Response
from rest_framework.settings import api_settings

from ..accounts import linking, preferences
from ..choices import conferencing_choices
from ..cronofy.redaction import redact
from ..db import non_atomic_requests
from ..exceptions import CronofyError, ReauthorizationRequired
from ..models import CalendarProfile, ConferencingProfile, LinkedAccount
from ..queueing import queue_enabled, queue_sync
from ..sync.service import sync_account
from .exceptions import CronofyRateLimited, ThrottledWithCode, to_api_exception
from .filters import ConferencingProfileFilter, ProfileFilter
from .permissions import api_permission_classes
from .schema import OpenApiParameter, OpenApiResponse, OpenApiTypes, extend_schema
from .serializers import (
    CalendarProfileSerializer,
    ConferencingAuthorizationRequestSerializer,
    ConferencingAuthorizationSerializer,
    ConferencingChoicesSerializer,
    ConferencingProfilePreferenceSerializer,
    ConferencingProfileSerializer,
    CronofyErrorSerializer,
    CronofyReauthorizationErrorSerializer,
    LinkedAccountSerializer,
    SyncQueuedSerializer,
    SyncResultSerializer,
)
from .throttling import CronofyUserRateThrottle

logger = logging.getLogger(__name__)

_PROFILE_ID = re.compile(r"[\x21-\x7e]{1,255}")
_ACCOUNT_ID = re.compile(r"[1-9][0-9]{0,18}")
_MAX_ID = 2**63 - 1

PROFILE_ID_PARAMETER = OpenApiParameter(
    "profile_id", OpenApiTypes.STR, location="path", description="Cronofy's profile id (pro_...)."
)

CRONOFY_ERROR_RESPONSES = {
    409: OpenApiResponse(
        CronofyReauthorizationErrorSerializer,
        description="The Cronofy account must be connected again (see reconnect_url).",
    ),
    429: OpenApiResponse(
        CronofyErrorSerializer, description="Rate limited; see the Retry-After header."
    ),
    502: OpenApiResponse(CronofyErrorSerializer, description="Cronofy answered with an error."),
    503: OpenApiResponse(CronofyErrorSerializer, description="Cronofy is unavailable."),
}


class _RestFrameworkSetting:
    """A class attribute that reads ``REST_FRAMEWORK[name]`` when accessed, not at import."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, instance, owner):
        return getattr(api_settings, self.name)


class NestingGuard(BaseParser):
    """One of the view's parsers, with a body nested past Python's recursion limit
    (``[[[[...]]]]``: a ``RecursionError`` in ``json.loads``) answered as a 400 like
    any other malformed body, instead of a 500."""

    def __init__(self, parser: BaseParser) -> None:
        self.parser = parser
        self.media_type = parser.media_type
        self.renderer_class = getattr(parser, "renderer_class", None)

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return self.parser.parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("Malformed request body: nested too deeply.") from None


class CronofyViewSetMixin:
    """Permissions from settings, user scoping, and Cronofy errors mapped to HTTP."""

    #: ``None``: use ``API_PERMISSION_CLASSES``. A subclass may set a list.
    permission_classes = None
    pagination_class = _RestFrameworkSetting("DEFAULT_PAGINATION_CLASS")
    #: Actions that call Cronofy: their routes never run in an ``ATOMIC_REQUESTS``
    #: transaction (which would hold locks across the HTTP call).
    non_atomic_actions: frozenset[str] = frozenset()

    @classmethod
    def as_view(cls, actions=None, **initkwargs):
        view = super().as_view(actions, **initkwargs)
        if actions and cls.non_atomic_actions.intersection(actions.values()):
            view = non_atomic_requests(view)
        return view

    def get_parsers(self):
        # The host's parsers (DEFAULT_PARSER_CLASSES), each guarded against deep nesting.
        return [NestingGuard(parser) for parser in super().get_parsers()]

    def get_permissions(self):
        classes = self.permission_classes
        if classes is None:
            classes = api_permission_classes()
        return [permission() for permission in classes]

    def scope_queryset(self, request, queryset):
        """Limit ``queryset`` to what ``request.user`` may see: their own rows.

        The subclass point for host projects (see the module docstring).
        """
        return queryset.for_user(request.user)

    def cronofy_account(self):
        """The account a Cronofy call was made for, if any (for the reconnect URL)."""
        return None

    def throttled(self, request, wait):
        """A throttle's 429 carries its ``code`` too (as every Cronofy error answer does)."""
        raise ThrottledWithCode(wait)

    def handle_exception(self, exc):
        if isinstance(exc, CronofyError):
            mapped = to_api_exception(exc, request=self.request, account=self.cronofy_account())
            if mapped is not None:
                logger.info(
                    "Cronofy API error answered with HTTP %s: %s", mapped.status_code, redact(exc)
                )
                exc = mapped
        response = super().handle_exception(exc)
        if isinstance(exc, CronofyRateLimited) and not response.has_header("Retry-After"):
            response["Retry-After"] = str(exc.wait)  # a host exception handler dropped it
        return response


class ProfileViewSetBase(CronofyViewSetMixin, viewsets.ReadOnlyModelViewSet):
    """What both kinds of profile share: the user's present rows, looked up by
    ``profile_id`` (Cronofy profile ids are global) within the user's profiles."""

    lookup_field = "profile_id"
    lookup_value_regex = "[^/]+"
    model: type = ConferencingProfile

    def get_queryset(self):
        queryset = self.model.objects.present().annotate(
            account_last_synced_at=F("account__last_synced_at")
        )
        return self.scope_queryset(self.request, queryset)

    def get_object(self):
        profile_id = self.kwargs[self.lookup_field]
        # Stored ids are printable ASCII tokens (cronofy.userinfo): anything else matches
        # nothing, and a NUL would be a DataError on PostgreSQL.
        if not _PROFILE_ID.fullmatch(profile_id):
            raise Http404("No conferencing profile matches the given query.")
        queryset = self.filter_queryset(self.get_queryset())
        # Unique per account; should one user have it on two accounts, take one steadily.
        obj = queryset.filter(profile_id=profile_id).first()
        if obj is None:
            raise Http404(f"No {self.model._meta.verbose_name} matches the given query.")
        self.check_object_permissions(self.request, obj)
        return obj


@extend_schema(tags=["cronofy"])
class ConferencingProfileViewSet(ProfileViewSetBase):
    """The requesting user's present conferencing profiles, across their linked accounts.

    Cronofy profile ids are global, so a detail is looked up by ``profile_id``
    within the user's profiles. ``PATCH`` with ``{"preferred": true}`` makes one
    its account's default for new meetings.
    """

    serializer_class = ConferencingProfileSerializer
    filter_backends = [ConferencingProfileFilter]
    model = ConferencingProfile

    def get_queryset(self):
        return (
            super()
            .get_queryset()
            .annotate(account_preferred_id=F("account__preferred_conferencing_profile_id"))
        )

    @extend_schema(summary="List the user's conferencing profiles")
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(
        summary="Retrieve one of the user's conferencing profiles",
        parameters=[PROFILE_ID_PARAMETER],
    )
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        summary="Make the profile its account's default for new meetings (or stop)",
        description=(
            '{"preferred": true} makes this profile the account\'s default (the one '
            "conferencing_for(account, 'preferred') returns and conferencing choices list "
            'first), replacing the previous one; {"preferred": false} stops preferring it. '
            "Answers the profile. Another user's profile is a 404."
        ),
        parameters=[PROFILE_ID_PARAMETER],
        request=ConferencingProfilePreferenceSerializer,
        responses={200: ConferencingProfileSerializer},
    )
    def partial_update(self, request, *args, **kwargs):
        profile = self.get_object()
        body = ConferencingProfilePreferenceSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        preferences.set_preferred(profile, body.validated_data["preferred"])
        return Response(self.get_serializer(self.get_object()).data)


@extend_schema(tags=["cronofy"])
class CalendarProfileViewSet(ProfileViewSetBase):
    """The requesting user's present calendar profiles (Google, Microsoft 365, Apple, ...)
    with their calendars; the same lookup and filters as conferencing profiles."""

    serializer_class = CalendarProfileSerializer
    filter_backends = [ProfileFilter]
    model = CalendarProfile

    @extend_schema(summary="List the user's calendar profiles")
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(
        summary="Retrieve one of the user's calendar profiles",
        parameters=[PROFILE_ID_PARAMETER],
    )
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)


@extend_schema(tags=["cronofy"])
class LinkedAccountViewSet(
    CronofyViewSetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """The requesting user's linked Cronofy accounts."""

    serializer_class = LinkedAccountSerializer
    filter_backends: list = []
    non_atomic_actions = frozenset({"destroy", "sync", "conferencing_authorization"})
    _account: LinkedAccount | None = None

    def get_queryset(self):
        queryset = LinkedAccount.objects.all()
        if self.action in ("list", "retrieve", None):
            queryset = queryset.with_profile_counts()
        return self.scope_queryset(self.request, queryset.order_by("created_at", "pk"))

    def get_serializer_class(self):
        if self.action == "sync":
            return SyncResultSerializer
        if self.action == "conferencing_authorization":
            return ConferencingAuthorizationRequestSerializer
        if self.action == "conferencing_choices":
            return ConferencingChoicesSerializer
        return super().get_serializer_class()

    #: The actions that call Cronofy: each spends from the user's budget.
    cronofy_actions = frozenset({"destroy", "sync", "conferencing_authorization"})

    def get_throttles(self):
        throttles = super().get_throttles()
        if self.action in self.cronofy_actions:
            throttles.append(CronofyUserRateThrottle(self.action))
        return throttles

    def get_object(self):
        pk = str(self.kwargs.get(self.lookup_url_kwarg or self.lookup_field, ""))
        # A primary key is a positive 64-bit integer; SQLite overflows beyond it.
        if not _ACCOUNT_ID.fullmatch(pk) or int(pk) > _MAX_ID:
            raise Http404("No linked account matches the given query.")
        self._account = super().get_object()
        return self._account

    def cronofy_account(self):
        return self._account

    @extend_schema(summary="List the user's linked Cronofy accounts")
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(summary="Retrieve one of the user's linked Cronofy accounts")
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        summary="Unlink: revoke access at Cronofy, then delete the account and its profiles",
        description=(
            "When Cronofy cannot be reached (503, or 429 when rate limited) or refuses "
            "the revocation (502) nothing is deleted: try again later."
        ),
        responses={
            204: None,
            **{code: CRONOFY_ERROR_RESPONSES[code] for code in (429, 502, 503)},
        },
    )
    def destroy(self, request, *args, **kwargs):
        return super().destroy(request, *args, **kwargs)

    def perform_destroy(self, instance: LinkedAccount) -> None:
        linking.unlink(instance)

    @extend_schema(
        summary="Sync the account's conferencing profiles from Cronofy now",
        description=(
            "Answers the sync's counts. When the app queues work (TASK_QUEUE: Celery "
            "or Django's tasks), answers 202 and syncs in a worker. Throttled per user "
            "(scope cronofy_sync)."
        ),
        request=None,
        responses={
            200: SyncResultSerializer,
            202: SyncQueuedSerializer,
            **CRONOFY_ERROR_RESPONSES,
        },
    )
    @action(detail=True, methods=["post"])
    def sync(self, request, pk=None):
        """Sync this Cronofy account's conferencing and calendar profiles now (POST).

        Answers what changed; with a task queue (TASK_QUEUE), 202 and the sync runs in
        a worker. Spends from the user's budget (scope cronofy_sync).
        """
        account = self.get_object()
        if queue_enabled():
            if account.status != LinkedAccount.Status.ACTIVE:
                # Answer now what the worker would only record.
                raise ReauthorizationRequired(
                    f"Cronofy account {account.pk} needs to be connected again."
                )
            queue_sync(account.pk)
            return Response(
                SyncQueuedSerializer({"account": account.pk, "queued": True}).data,
                status=status.HTTP_202_ACCEPTED,
            )
        result = sync_account(account)
        return Response(
            SyncResultSerializer({**dataclasses.asdict(result), "changed": result.changed}).data
        )

    @extend_schema(
        summary="Start connecting a conferencing provider to the account",
        description=(
            "Answers the Cronofy URL to send the user to. Cronofy sends them back to "
            "redirect_uri (default: this app's conferencing return page)."
        ),
        request=ConferencingAuthorizationRequestSerializer,
        responses={200: ConferencingAuthorizationSerializer, **CRONOFY_ERROR_RESPONSES},
    )
    @action(
        detail=True,
        methods=["post"],
        url_path="conferencing-authorization",
        url_name="conferencing-authorization",
    )
    def conferencing_authorization(self, request, pk=None):
        """Start connecting a conferencing provider (Zoom, Microsoft Teams, GoTo, ...) to
        this account (POST): answers the URL to send the user to."""
        account = self.get_object()
        serializer = ConferencingAuthorizationRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        redirect_uri = serializer.validated_data.get("redirect_uri") or self.default_redirect_uri(
            request, account
        )
        url = linking.create_conferencing_authorization(
            account,
            redirect_uri,
            provider_name=serializer.validated_data.get("provider_name") or None,
        )
        return Response(ConferencingAuthorizationSerializer({"url": url}).data)

    @extend_schema(
        summary="What conferencing the account can put on an event now",
        description=(
            "Read from the stored profiles (never a Cronofy call): connected conferencing "
            "profiles, 'integrated' where a calendar has conferencing built in, 'default'; "
            "disconnected profiles apart, with their relink URL. A stale account "
            "(SYNC_STALE_AFTER) says so, and gets a resync queued when a task queue is set."
        ),
        responses={200: ConferencingChoicesSerializer},
    )
    @action(
        detail=True,
        methods=["get"],
        url_path="conferencing-choices",
        url_name="conferencing-choices",
    )
    def conferencing_choices(self, request, pk=None):
        """What conferencing this account can put on an event now, from stored rows."""
        choices = conferencing_choices(self.get_object())
        return Response(ConferencingChoicesSerializer(choices).data)

    def default_redirect_uri(self, request, account: LinkedAccount) -> str:
        """The browser flow's return page, with a single-use value: it syncs once per flow."""
        try:
            from ..web.views import conferencing_return_url

            return conferencing_return_url(request, account)
        except NoReverseMatch:
            raise ValidationError(
                {
                    "redirect_uri": [
                        _(
                            "This field is required: the browser flow "
                            "(django_cronofy_conferencing.urls) is not installed."
                        )
                    ]
                },
                code="required",
            ) from None
