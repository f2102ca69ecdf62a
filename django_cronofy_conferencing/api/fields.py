"""``ConferencingChoiceField``: the conferencing pick of a host's booking serializer.

    class BookingSerializer(serializers.Serializer):
        conferencing = ConferencingChoiceField()

It accepts ``"<account id>:<choice>"`` (a conferencing profile id,
``"integrated"``, ``"default"``) or ``{"account": <id>, "choice": "..."}``,
limited to ``request.user``'s accounts (the serializer's ``context["request"]``),
checked against the stored rows; ``validated_data`` holds a
``choices.ConferencingSelection`` (``.conferencing`` is Cronofy's object). A
refused profile answers 400 naming it, with its ``relink_url`` when relinking
fixes it.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from ..choices import ConferencingSelection, ConferencingUnavailable, InvalidSelection, select
from ..models import LinkedAccount


class ConferencingChoiceField(serializers.Field):
    default_error_messages = {
        # Doubled braces: DRF formats the message with str.format.
        "invalid": _('Give "<account id>:<choice>" or {{"account": <id>, "choice": "..."}}.'),
    }

    def __init__(self, *, calendar_id_field: str | None = None, **kwargs: Any) -> None:
        #: The name of a sibling field holding the event's calendar id, if any: then
        #: "integrated" must be offered by that calendar.
        self.calendar_id_field = calendar_id_field
        super().__init__(**kwargs)

    def accounts(self):
        request = self.context.get("request")
        return LinkedAccount.objects.for_user(getattr(request, "user", None))

    def to_internal_value(self, data: Any) -> ConferencingSelection:
        if isinstance(data, dict):
            account, choice = data.get("account"), data.get("choice")
            if isinstance(account, bool) or not isinstance(account, int | str):
                self.fail("invalid")
            data = f"{account}:{choice}" if isinstance(choice, str) else None
        if not isinstance(data, str):
            self.fail("invalid")
        calendar_id = None
        if self.calendar_id_field and isinstance(self.parent.initial_data, dict):
            value = self.parent.initial_data.get(self.calendar_id_field)
            calendar_id = value if isinstance(value, str) else None
        try:
            return select(self.accounts(), data, calendar_id=calendar_id)
        except InvalidSelection as exc:
            raise serializers.ValidationError(str(exc), code="invalid_choice") from None
        except ConferencingUnavailable as exc:
            detail: dict[str, Any] = {"detail": str(exc)}
            if exc.profile is not None:
                detail["profile_id"] = exc.profile.profile_id
            if exc.relink_url:
                detail["relink_url"] = exc.relink_url
            raise serializers.ValidationError(detail, code="unavailable") from None

    def to_representation(self, value: ConferencingSelection) -> dict[str, Any]:
        return {
            "account": value.account.pk,
            "choice": value.choice,
            "conferencing": value.conferencing,
        }
