"""The token lifecycle the sync service needs: ensure, refresh (single flight), revoke.

Refresh is the one place a database lock is held across an HTTP call: under
the account's row lock (and a process-local lock, which is what serializes
threads on SQLite) so concurrent workers refresh exactly once. On a SQLite
file, which has no row locks, processes take turns through a lock file
(``db.refresh_lock``) instead, and the stored tokens are re-read under
SQLite's write lock. This module sits below ``sync``; the linking flow
(``linking``) sits above it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from datetime import datetime, timedelta

from django.db import router, transaction
from django.db.models import F
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from ..conf import app_settings
from ..cronofy import telemetry
from ..cronofy.client import CronofyClient, get_client
from ..cronofy.redaction import redact, remember_secret
from ..cronofy.tokens import TokenSet, parse_token_response
from ..db import is_sqlite_file, refresh_lock, row_lock_transaction, write_lock
from ..exceptions import InvalidGrant, InvalidResponse, NothingDue, ReauthorizationRequired
from ..models import LinkedAccount
from ..signals import account_reauthorization_required

logger = logging.getLogger(__name__)

# One per slot of account ids, held across the refresh (single flight between
# threads). Reentrant: the reauthorization signal is sent inside it, and a
# handler may refresh another account that falls in the same slot.
_REFRESH_LOCKS = tuple(threading.RLock() for _ in range(64))


def expires_at(tokens: TokenSet, now: datetime | None = None) -> datetime | None:
    if tokens.expires_in is None:
        return None
    return (now or timezone.now()) + timedelta(seconds=tokens.expires_in)


@sensitive_variables("refresh_token", "body", "tokens")
def refresh_tokens(
    data_center: str, refresh_token: str, *, client: CronofyClient | None = None
) -> TokenSet:
    """Trade a refresh token for new tokens at the data center's API host; stores nothing.

    Cronofy may leave ``refresh_token`` out of the answer: the one sent stays
    valid then, and is what the returned ``TokenSet`` holds. A dead grant
    raises ``InvalidGrant``.

    Never retried once the request may have reached Cronofy (a read timeout,
    a reset, a 5xx): had Cronofy rotated the refresh token, the answer with
    the new one is lost and a retry with the old one would get
    ``invalid_grant``, an account marked dead though the user did nothing.
    The ``CronofyUnavailable`` leaves the account active, to be tried again
    by the next sync. Connect timeouts and 429s (Cronofy did nothing) are retried.
    """
    client = client or get_client(data_center)
    body = client.request_token(
        {"grant_type": "refresh_token", "refresh_token": refresh_token}, idempotent=False
    )
    tokens = parse_token_response(body, expect_sub=False)
    remember_secret(tokens.access_token)
    remember_secret(tokens.refresh_token)
    if not tokens.refresh_token:
        tokens = replace(tokens, refresh_token=refresh_token)
    return tokens


@sensitive_variables("token")
def revoke(account: LinkedAccount, *, client: CronofyClient | None = None) -> None:
    """Revoke the grant with the refresh token (it cannot have expired)."""
    token = account.refresh_token or account.access_token
    if not token:
        return
    (client or get_client(account.data_center)).revoke_token(token)


def ensure_access_token(account: LinkedAccount, *, client: CronofyClient | None = None) -> str:
    """The access token to use now, refreshed first when it expires within the margin."""
    token = stored_access_token(account)
    return token if token is not None else refresh_access_token(account, client=client)


def stored_access_token(account: LinkedAccount) -> str | None:
    """The stored access token when it needs no refresh now, else None.

    No query and no HTTP (a fetching thread calls it); ``ReauthorizationRequired``
    when the account cannot be used at all.
    """
    if account.status != LinkedAccount.Status.ACTIVE:
        raise ReauthorizationRequired(
            f"Cronofy account {account.pk} needs to be connected again ({account.status})."
        )
    if not account.access_token:
        raise ReauthorizationRequired(f"Cronofy account {account.pk} has no access token stored.")
    if account.token_expires_within(app_settings.TOKEN_REFRESH_MARGIN):
        return None
    return account.access_token


def _adopt(account: LinkedAccount, current: LinkedAccount) -> None:
    for name in ("access_token", "refresh_token", "token_expires_at", "status", "scope"):
        setattr(account, name, getattr(current, name))


@telemetry.traced(
    telemetry.SPAN_REFRESH,
    lambda account, **_: {
        "cronofy.account.id": account.pk,
        "cronofy.data_center": account.data_center,
    },
)
@sensitive_variables("stale_token", "rejected_token", "sent_refresh_token", "tokens")
def refresh_access_token(
    account: LinkedAccount,
    *,
    rejected_token: str | None = None,
    client: CronofyClient | None = None,
    unless_synced_since: datetime | bool | None = False,
) -> str:
    """Refresh once across workers; returns the token to use and updates ``account``.

    ``rejected_token`` is the access token Cronofy just answered 401 to: if the
    stored one differs, another worker already refreshed and that one is used.
    ``unless_synced_since`` (a sweep passes the ``last_synced_at`` it selected the
    account with): raise ``NothingDue`` instead of refreshing when the stored
    ``last_synced_at`` moved since, so no token is refreshed only to find nothing due.

    The row lock is held for at most one Cronofy call, which ``REQUEST_DEADLINE``
    bounds (the refresh is never retried, see ``refresh_tokens``).
    """
    stale_token = rejected_token or account.access_token
    client = client or get_client(account.data_center)
    using = router.db_for_write(LinkedAccount)
    with (
        _REFRESH_LOCKS[hash(account.pk) % len(_REFRESH_LOCKS)],
        refresh_lock(using, account.pk),
    ):
        failure: InvalidGrant | InvalidResponse | None = None
        with row_lock_transaction(using):
            current = _read_for_refresh(account.pk, using)
            if current is None:
                raise ReauthorizationRequired(f"Cronofy account {account.pk} no longer exists.")
            if current.status != LinkedAccount.Status.ACTIVE:
                _adopt(account, current)
                raise ReauthorizationRequired(
                    f"Cronofy account {account.pk} needs to be connected again ({current.status})."
                )
            if unless_synced_since is not False and current.last_synced_at != unless_synced_since:
                raise NothingDue(f"Cronofy account {account.pk} was synced meanwhile.")
            margin = app_settings.TOKEN_REFRESH_MARGIN
            if current.access_token != stale_token and not current.token_expires_within(margin):
                _adopt(account, current)
                return current.access_token
            sent_refresh_token = current.refresh_token
            try:
                tokens = refresh_tokens(current.data_center, sent_refresh_token, client=client)
            except InvalidGrant as exc:
                if _grant_changed_meanwhile(current, sent_refresh_token, using):
                    current.refresh_from_db(using=using)
                    _adopt(account, current)
                    return current.access_token
                _mark_reauthorization_required(current, exc, using)
                _adopt(account, current)
                failure = exc
            except InvalidResponse as exc:
                # An answer that is no token answer (hostile or broken): nothing of it is
                # stored, the tokens stay as they were; recorded below, after the lock.
                failure = exc
            else:
                current.access_token = tokens.access_token
                current.refresh_token = tokens.refresh_token  # the one sent, if none came back
                current.token_expires_at = expires_at(tokens)
                fields = ["access_token", "refresh_token", "token_expires_at", "updated_at"]
                if tokens.scope:
                    current.scope = tokens.scope
                    fields.append("scope")
                with write_lock(using):
                    current.save(using=using, update_fields=fields)
                _adopt(account, current)
                logger.info("Refreshed the Cronofy access token of account %s", account.pk)
                return current.access_token
        if isinstance(failure, InvalidResponse):
            _record_unusable_answer(account, failure, using)
        assert failure is not None
        raise failure


def _record_unusable_answer(account: LinkedAccount, exc: InvalidResponse, using: str) -> None:
    """The token endpoint answered something unusable: say so on the account (whoever
    asked for the refresh: a sync, a conferencing authorization, a channel check)."""
    message = redact(exc)[:2000]
    with write_lock(using):
        LinkedAccount.objects.using(using).filter(pk=account.pk).update(
            last_sync_error=message,
            consecutive_failures=F("consecutive_failures") + 1,
            updated_at=timezone.now(),
        )
    account.last_sync_error = message
    account.consecutive_failures = (account.consecutive_failures or 0) + 1
    exc.recorded_on_account = True
    logger.warning("Cronofy token refresh of account %s failed: %s", account.pk, message)


def _read_for_refresh(pk: int, using: str) -> LinkedAccount | None:
    """The stored account, read under its row lock (PostgreSQL and the like).

    On a SQLite file, under SQLite's write lock instead (an UPDATE that changes
    nothing, then the read, in one transaction): a refresh that another process
    stored inside a transaction it has not committed yet (``sync_accounts`` in a
    caller's ``atomic()``) is waited for rather than read stale and made twice.
    Outside a caller's transaction the write lock is let go before Cronofy is
    called; inside one it stays until the caller commits, as a row lock would.
    """
    accounts = LinkedAccount.objects.using(using)
    if not is_sqlite_file(using):
        return accounts.select_for_update().filter(pk=pk).first()
    with write_lock(using), transaction.atomic(using=using):
        accounts.filter(pk=pk).update(status=F("status"))
        return accounts.filter(pk=pk).first()


def _grant_changed_meanwhile(current: LinkedAccount, sent: str, using: str) -> bool:
    """A relink that stored new tokens while our refresh was in flight is a lost race."""
    stored = LinkedAccount.objects.using(using).filter(pk=current.pk).first()
    return stored is not None and stored.refresh_token != sent


def _mark_reauthorization_required(account: LinkedAccount, exc: Exception, using: str) -> None:
    with write_lock(using):
        changed = (
            LinkedAccount.objects.using(using)
            .filter(pk=account.pk, status=LinkedAccount.Status.ACTIVE)
            .update(
                status=LinkedAccount.Status.REAUTHORIZATION_REQUIRED,
                last_sync_error=redact(exc),
                updated_at=timezone.now(),
            )
        )
    account.status = LinkedAccount.Status.REAUTHORIZATION_REQUIRED
    account.last_sync_error = redact(exc)
    if changed:
        logger.warning("Cronofy account %s needs reauthorization: %s", account.pk, redact(exc))
        transaction.on_commit(
            lambda: account_reauthorization_required.send(sender=LinkedAccount, account=account),
            using=using,
        )
