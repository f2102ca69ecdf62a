"""Signals a host project can listen to. All are sent after the transaction commits.

- ``conferencing_profile_added`` / ``_removed`` / ``_disconnected`` / ``_reconnected``:
  ``sender=ConferencingProfile``, ``profile=``; only for real changes.
- ``account_synced``: ``sender=LinkedAccount``, ``account=``, ``result=`` (a
  ``SyncResult``), after every successful sync.
- ``account_reauthorization_required``: ``sender=LinkedAccount``, ``account=``,
  once, when the account's grant is found dead.
"""

from django.dispatch import Signal

conferencing_profile_added = Signal()
conferencing_profile_removed = Signal()
conferencing_profile_disconnected = Signal()
conferencing_profile_reconnected = Signal()
account_synced = Signal()
account_reauthorization_required = Signal()
