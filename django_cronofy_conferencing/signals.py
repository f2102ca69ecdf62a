"""Signals a host project can listen to. All are sent after the transaction commits.

- ``conferencing_profile_added`` / ``_removed`` / ``_disconnected`` / ``_reconnected``:
  ``sender=ConferencingProfile``, ``profile=``; only for real changes.
- ``calendar_profile_added`` / ``_removed`` / ``_disconnected`` / ``_reconnected``:
  the same for calendar profiles, ``sender=CalendarProfile``, ``profile=``.
- ``account_synced``: ``sender=LinkedAccount``, ``account=``, ``result=`` (a
  ``SyncResult``), after every successful sync.
- ``account_reauthorization_required``: ``sender=LinkedAccount``, ``account=``,
  once, when the account's grant is found dead.
- ``account_gdpr_requested``: ``sender=LinkedAccount``, ``account=``, when
  Cronofy pushes ``gdpr_requested`` for the account's channel: the user asked
  Cronofy to erase their data; erase what your project keeps about them
  (``linking.unlink(account)`` removes this app's rows and revokes the grant).
  Sent as the notification is received (no transaction is open then).
- ``relink_reminder_due``: ``sender=ConferencingProfile``, ``profile=``, ``step=``
  (days since the profile disconnected: one of ``RELINK_REMINDERS["DAYS"]``), once
  per step and disconnection, when ``manage.py cronofy_remind`` (or its task) finds
  it due; for hosts who message users their own way (``"EMAIL": False``).
"""

from django.dispatch import Signal

conferencing_profile_added = Signal()
conferencing_profile_removed = Signal()
conferencing_profile_disconnected = Signal()
conferencing_profile_reconnected = Signal()
calendar_profile_added = Signal()
calendar_profile_removed = Signal()
calendar_profile_disconnected = Signal()
calendar_profile_reconnected = Signal()
account_synced = Signal()
account_reauthorization_required = Signal()
account_gdpr_requested = Signal()
relink_reminder_due = Signal()
