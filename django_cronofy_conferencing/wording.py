"""The words end users read, in one place: the page, the banner and the reminder emails.

- ``words()``: the few phrases that name the calendar service. End users see a
  vendor's name only where the host opts in (``PRODUCT_NAME``); by default they
  read "calendar account" and "Connect your calendar".
- Labels that tell profiles apart ("Zoom (jane@zoom.example)", "Apple calendar").
- Outcome sentences ("GoTo is working again", "Zoom needs relinking").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.utils.text import capfirst
from django.utils.translation import gettext as _

from .conf import app_settings
from .models import CalendarProfile, ConferencingProfile, LinkedAccount
from .providers import provider_label


@dataclass(frozen=True)
class Words:
    """The phrases that name the calendar service (``PRODUCT_NAME``, or plain words)."""

    product: str  # the host's chosen name, "" when it shows none
    account: str  # "calendar account" / "Cronofy account"
    accounts: str  # plural
    service: str  # "the calendar service" / "Cronofy", mid-sentence
    connect: str  # the Connect button
    connect_another: str
    reconnect: str  # the one action of an account that needs reauthorization

    @property
    def service_first(self) -> str:
        """``service`` at the start of a sentence."""
        return capfirst(self.service)


def product_name() -> str:
    value = app_settings.PRODUCT_NAME
    return value.strip() if isinstance(value, str) else ""


def words() -> Words:
    """The service's words in the active language (call it per request)."""
    product = product_name()
    if product:
        values = {"product": product}
        return Words(
            product=product,
            account=_("%(product)s account") % values,
            accounts=_("%(product)s accounts") % values,
            service=product,
            connect=_("Connect %(product)s") % values,
            connect_another=_("Add another %(product)s account") % values,
            reconnect=_("Reconnect %(product)s") % values,
        )
    return Words(
        product="",
        account=_("calendar account"),
        accounts=_("calendar accounts"),
        service=_("the calendar service"),
        connect=_("Connect your calendar"),
        connect_another=_("Add another calendar account"),
        reconnect=_("Reconnect your calendar"),
    )


def account_label(account: LinkedAccount) -> str:
    return account.email or account.name or account.sub


def conferencing_label(profile: ConferencingProfile, *, named: bool = False) -> str:
    """ "Zoom", or "Zoom (jane@zoom.example)" where the name tells two of a kind apart."""
    label = provider_label(profile.provider_name)
    if named and profile.profile_name:
        return f"{label} ({profile.profile_name})"
    return label


def calendar_label(profile: CalendarProfile, *, named: bool = False) -> str:
    """ "Apple calendar", or "Apple calendar (home@x.test)"."""
    label = _("%(provider)s calendar") % {"provider": provider_label(profile.provider_name)}
    if named and profile.profile_name:
        return f"{label} ({profile.profile_name})"
    return label


def duplicated_providers(profiles: list[Any]) -> set[str]:
    """Providers with more than one profile in ``profiles``: their labels need the name."""
    seen: set[str] = set()
    twice: set[str] = set()
    for profile in profiles:
        (twice if profile.provider_name in seen else seen).add(profile.provider_name)
    return twice


# -- sentences ---------------------------------------------------------------------


def sentence_connected_again(label: str) -> str:
    return _("%(profile)s is working again") % {"profile": label}


def sentence_needs_relinking(label: str) -> str:
    return _("%(profile)s needs relinking") % {"profile": label}


def sentence_added(label: str) -> str:
    return _("%(profile)s was added") % {"profile": label}


def sentence_removed(label: str) -> str:
    return _("%(profile)s was removed") % {"profile": label}


def sentence_status_unknown(label: str) -> str:
    return _("%(profile)s: status unknown") % {"profile": label}
