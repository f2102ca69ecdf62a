"""Hand accounts to the Celery workers (``USE_CELERY``).

Celery is optional: ``tasks`` is imported only when something is queued, so
the app imports and runs without it installed.
"""

from __future__ import annotations


def queue_sync(account_id: int) -> None:
    """Queue ``sync_account_task`` for one account."""
    from .tasks import sync_account_task

    sync_account_task.delay(account_id)
