"""``ConferencingChoiceField``: the conferencing picker of a host's booking form.

    class BookingForm(forms.Form):
        conferencing = ConferencingChoiceField()

        def __init__(self, *args, user, **kwargs):
            super().__init__(*args, **kwargs)
            self.fields["conferencing"].limit_to(user)

The options are the user's accounts' ``conferencing_choices`` (grouped by
account when there are several; disconnected profiles shown disabled, saying
why); the cleaned value is a ``choices.ConferencingSelection`` (the account, the
choice, and the ``conferencing`` object to send to Cronofy), checked again
against the stored rows when the form is submitted, so a profile that was
disconnected meanwhile is refused with its Relink link.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .choices import (
    ConferencingChoice,
    ConferencingSelection,
    ConferencingUnavailable,
    InvalidSelection,
    conferencing_choices,
    profile_label,
    select,
)
from .models import LinkedAccount


class ConferencingSelect(forms.Select):
    """A select whose unavailable options (disconnected profiles) are disabled."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.disabled_values: set[str] = set()

    def __deepcopy__(self, memo):
        result = super().__deepcopy__(memo)
        result.disabled_values = set(self.disabled_values)
        return result

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        if str(value) in self.disabled_values:
            option["attrs"]["disabled"] = True
        return option


class ConferencingChoiceField(forms.ChoiceField):
    """Pick conferencing for an event among the user's accounts' working options."""

    widget = ConferencingSelect
    default_error_messages = {
        "required": gettext_lazy("Choose a conferencing option."),
    }

    def __init__(
        self,
        *,
        user=None,
        account: LinkedAccount | None = None,
        calendar_id: str | None = None,
        show_unavailable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(choices=(), **kwargs)
        self.user = None
        self.account = account
        self.calendar_id = calendar_id
        self.show_unavailable = show_unavailable
        #: ``"<account>:<value>"`` -> the ``ConferencingChoice`` offered (for templates).
        self.offered: dict[str, ConferencingChoice] = {}
        #: The ``ConferencingUnavailable`` of the last refused value (its ``relink_url``).
        self.unavailable_error: ConferencingUnavailable | None = None
        self.stale = False
        if user is not None or account is not None:
            self.limit_to(user, account=account)

    def accounts(self):
        """The accounts a value may name: the user's (or only ``account``, if it is theirs)."""
        queryset = LinkedAccount.objects.for_user(self.user) if self.user is not None else None
        if queryset is None:
            queryset = LinkedAccount.objects.filter(pk=self.account.pk if self.account else None)
        if self.account is not None:
            queryset = queryset.filter(pk=self.account.pk)
        return queryset.order_by("created_at", "pk")

    def limit_to(self, user, *, account: LinkedAccount | None = None) -> None:
        """Offer ``user``'s accounts' choices (only ``account``'s, when given)."""
        self.user = user
        if account is not None:
            self.account = account
        groups: list[tuple[str, list[tuple[str, str]]]] = []
        disabled: set[str] = set()
        self.offered = {}
        self.stale = False
        for linked in self.accounts():
            choices = conferencing_choices(linked)
            self.stale |= choices.stale
            options: list[tuple[str, str]] = []
            for choice in choices.available:
                value = f"{linked.pk}:{choice.value}"
                self.offered[value] = choice
                options.append((value, choice.label))
            if self.show_unavailable:
                for profile in choices.unavailable:
                    value = f"{linked.pk}:{profile.profile_id}"
                    options.append(
                        (
                            value,
                            _("%(profile)s: disconnected, relink to use it")
                            % {"profile": profile_label(profile)},
                        )
                    )
                    disabled.add(value)
                if choices.reauthorization_required:
                    value = f"{linked.pk}:reconnect"
                    options.append((value, _("Connect this Cronofy account again to use it")))
                    disabled.add(value)
            groups.append((linked.email or linked.sub, options))
        if len(groups) == 1:
            self.choices = groups[0][1]
        else:
            self.choices = groups
        self.widget.disabled_values = disabled

    def valid_value(self, value: Any) -> bool:
        return True  # ``clean`` checks the value against the stored rows

    def clean(self, value: Any) -> ConferencingSelection | None:
        value = self.to_python(value)
        self.validate(value)
        self.run_validators(value)
        if value in self.empty_values:
            return None
        self.unavailable_error = None
        try:
            return select(
                self.accounts(),
                value,
                account=self.account,
                calendar_id=self.calendar_id,
            )
        except InvalidSelection as exc:
            raise ValidationError(str(exc), code="invalid_choice") from None
        except ConferencingUnavailable as exc:
            self.unavailable_error = exc
            # No params: a relink URL's %-escapes would be read as format directives.
            raise ValidationError(str(exc), code="unavailable") from None

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, ConferencingSelection):
            return f"{value.account.pk}:{value.choice}"
        return value
