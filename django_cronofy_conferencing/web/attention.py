"""What needs the user, in words a user understands (the words: ``wording``).

Shared by the "My conferencing" page (``pages``) and the banner a host puts in
its base template (``{% cronofy_attention %}``):

- ``user_attention(user)``: the broken conferencing and calendar profiles and the
  accounts to reconnect of one user, in three queries whatever their number.
- ``snapshot`` / ``outcomes``: what a sync did, as outcomes ("GoTo is working
  again", "Zoom needs relinking") rather than counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..models import CalendarProfile, ConferencingProfile, LinkedAccount
from ..wording import (
    account_label,
    calendar_label,
    conferencing_label,
    duplicated_providers,
    sentence_added,
    sentence_connected_again,
    sentence_needs_relinking,
    sentence_removed,
)

__all__ = ["Attention", "BrokenProfile", "Snapshot", "outcomes", "snapshot", "user_attention"]


# -- outcomes of a sync --------------------------------------------------------------

#: ``(kind, profile_id)`` -> ``(label, connected)`` of an account's present profiles.
Snapshot = dict[tuple[str, str], tuple[str, bool]]


def snapshot(account: LinkedAccount) -> Snapshot:
    """The account's present profiles of both kinds and whether each works (two queries)."""
    conferencing = list(ConferencingProfile.objects.present().filter(account_id=account.pk))
    calendars = list(CalendarProfile.objects.present().filter(account_id=account.pk))
    twice = duplicated_providers(conferencing)
    twice_calendars = duplicated_providers(calendars)
    state: Snapshot = {}
    for profile in conferencing:
        label = conferencing_label(profile, named=profile.provider_name in twice)
        state[("conferencing", profile.profile_id)] = (label, profile.profile_connected)
    for profile in calendars:
        label = calendar_label(profile, named=profile.provider_name in twice_calendars)
        state[("calendar", profile.profile_id)] = (label, profile.profile_connected)
    return state


def outcomes(before: Snapshot, after: Snapshot) -> list[str]:
    """What changed between two snapshots, as sentences: conferencing first."""
    found: list[tuple[int, str]] = []
    for key, (label, connected) in after.items():
        order = 0 if key[0] == "conferencing" else 1
        previous = before.get(key)
        if previous is None:
            text = sentence_added(label) if connected else sentence_needs_relinking(label)
        elif previous[1] != connected:
            text = sentence_connected_again(label) if connected else sentence_needs_relinking(label)
        else:
            continue
        found.append((order, text))
    for key, (label, _connected) in before.items():
        if key not in after:
            found.append((0 if key[0] == "conferencing" else 1, sentence_removed(label)))
    return [text for _order, text in sorted(found, key=lambda item: item[0])]


# -- the banner ----------------------------------------------------------------------


@dataclass
class BrokenProfile:
    profile: Any  # a ConferencingProfile or a CalendarProfile
    label: str
    account_label: str

    @property
    def relink_url(self) -> str:
        return self.profile.profile_relink_url


@dataclass
class Attention:
    """What one user must fix: accounts to reconnect, profiles to relink."""

    accounts_to_reconnect: list[LinkedAccount] = field(default_factory=list)
    conferencing: list[BrokenProfile] = field(default_factory=list)
    calendars: list[BrokenProfile] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.accounts_to_reconnect or self.conferencing or self.calendars)

    @property
    def several_accounts(self) -> bool:
        accounts = {b.account_label for b in self.conferencing + self.calendars}
        accounts.update(account_label(a) for a in self.accounts_to_reconnect)
        return len(accounts) > 1


def user_attention(user: Any) -> Attention:
    """``user``'s broken profiles (of accounts that still work) and accounts to reconnect.

    Three queries whatever the number of accounts and profiles; none for an
    anonymous user. Only ``user``'s own rows.
    """
    result = Attention()
    if user is None or not getattr(user, "is_authenticated", False):
        return result
    active = LinkedAccount.Status.ACTIVE
    result.accounts_to_reconnect = list(
        LinkedAccount.objects.for_user(user).exclude(status=active).order_by("created_at", "pk")
    )
    for model, target, label_of in (
        (ConferencingProfile, result.conferencing, conferencing_label),
        (CalendarProfile, result.calendars, calendar_label),
    ):
        broken = list(
            model.objects.disconnected()
            .filter(account__user=user, account__status=active)
            .select_related("account")
            .order_by("account__created_at", "account_id", "provider_name", "profile_name", "pk")
        )
        for profile in broken:
            # Named: "Zoom (jane@zoom.example)" tells it from the user's other Zoom.
            label = label_of(profile, named=True)
            target.append(BrokenProfile(profile, label, account_label(profile.account)))
    return result
