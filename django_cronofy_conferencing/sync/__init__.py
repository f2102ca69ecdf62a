"""The one sync service: ``sync_account`` and ``sync_accounts`` (``service``), the
diff of a UserInfo against the stored rows (``plan``) and the writes (``writes``)."""

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
    "SyncReport",
    "SyncResult",
    "stream_accounts",
    "sync_account",
    "sync_accounts",
]
