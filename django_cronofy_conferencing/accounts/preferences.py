"""The user's preferred (default) conferencing profile of each linked account.

Stored on the account (``LinkedAccount.preferred_conferencing_profile_id``), so
"one per account" needs no constraint and a choice outlives Cronofy removing
and listing the profile again. Set from the "My conferencing" page and the
API (``PATCH conferencing-profiles/<profile_id>/`` with ``{"preferred": true}``);
read by ``choices`` (listed first; ``conferencing_for(account, "preferred")``).
"""

from __future__ import annotations

from django.db import router
from django.utils import timezone

from ..db import write_lock
from ..models import ConferencingProfile, LinkedAccount


def set_preferred(profile: ConferencingProfile, preferred: bool = True) -> bool:
    """Make ``profile`` its account's preferred profile (``preferred=False``: stop
    preferring it, if it is the one). One UPDATE; returns whether anything changed.

    Also stamps the account's ``updated_at``: the open "My conferencing" page
    notices the change on its next poll.
    """
    using = router.db_for_write(LinkedAccount)
    accounts = LinkedAccount.objects.using(using).filter(pk=profile.account_id)
    if preferred:
        accounts = accounts.exclude(preferred_conferencing_profile_id=profile.profile_id)
        value = profile.profile_id
    else:
        accounts = accounts.filter(preferred_conferencing_profile_id=profile.profile_id)
        value = ""
    with write_lock(using):
        changed = accounts.update(
            preferred_conferencing_profile_id=value, updated_at=timezone.now()
        )
    if changed and ConferencingProfile.account.is_cached(profile):
        profile.account.preferred_conferencing_profile_id = value
    return bool(changed)
