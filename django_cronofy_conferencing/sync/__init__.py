"""The one sync service: ``sync_account`` and ``sync_accounts`` (``service``), the
diff of a UserInfo against the stored rows (``plan``) and the writes (``writes``);
the sweep's order (``order``), the budget outlook (``budget``) and the channel
confirmation a sweep renews (``confirmation``). ``Lane``: whose call a sync is."""

from ..cronofy.ratelimit import Lane
from .budget import BudgetOutlook, budget_outlook
from .plan import SyncResult
from .service import (
    WRITE_BATCH_SIZE,
    WRITE_BATCH_WAIT,
    SyncReport,
    stream_accounts,
    sync_account,
    sync_accounts,
)

__all__ = [
    "WRITE_BATCH_SIZE",
    "WRITE_BATCH_WAIT",
    "BudgetOutlook",
    "Lane",
    "SyncReport",
    "SyncResult",
    "budget_outlook",
    "stream_accounts",
    "sync_account",
    "sync_accounts",
]
