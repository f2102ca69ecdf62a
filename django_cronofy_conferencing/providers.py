"""Cronofy's conferencing provider names and how to show them.

``ConferencingProfile.provider_name`` is free text: Cronofy adds providers
without notice, so a name not listed here is shown title-cased.
"""

from __future__ import annotations

from types import MappingProxyType

from django.utils.translation import gettext, gettext_lazy

#: Readable names of the providers Cronofy documents (brand names: not translated).
PROVIDER_LABELS = MappingProxyType(
    {
        "zoom": "Zoom",
        "ms_teams": "Microsoft Teams",
        "go_to": "GoTo",
        "google_meet_api": "Google Meet",
        "google_meet": "Google Meet",  # an event's integrated conferencing
    }
)

#: Calendar providers (``CalendarProfile.provider_name``), by name for people.
CALENDAR_PROVIDER_LABELS = MappingProxyType(
    {
        "google": "Google",
        "apple": "Apple",
        "office365": "Microsoft 365",
        "exchange": "Exchange",
        "live_connect": "Outlook.com",
        "cronofy": "Cronofy",
    }
)

#: The providers Cronofy documents for conferencing service authorization
#: ("add a conferencing provider"), in the order a form offers them.
LINKABLE_PROVIDERS = ("zoom", "ms_teams", "go_to")

#: ``(provider_name, label)`` for the "add a conferencing provider" form; the
#: first, blank, choice lets the user pick at Cronofy. Lazy: module-level
#: labels follow the language of each request.
LINKABLE_PROVIDER_CHOICES = (
    ("", gettext_lazy("Let me choose at Cronofy")),
    *((name, PROVIDER_LABELS[name]) for name in LINKABLE_PROVIDERS),
)


def provider_label(provider_name: str | None) -> str:
    """A name for people: a known (conferencing or calendar) provider's label, any
    other name title-cased.

    ``"webex"`` reads "Webex", ``"some_new_thing"`` "Some New Thing": people never
    see Cronofy's raw codes.
    """
    if not provider_name:
        return gettext("Unknown provider")
    known = PROVIDER_LABELS.get(provider_name, CALENDAR_PROVIDER_LABELS.get(provider_name))
    if known is not None:
        return known
    words = provider_name.replace("_", " ").replace("-", " ").split()
    return " ".join(word[:1].upper() + word[1:] for word in words) or provider_name
