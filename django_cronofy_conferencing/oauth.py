"""OAuth with Cronofy: authorization URL, code exchange, refresh (single flight), revoke.

Refresh is the one place a database lock is held across an HTTP call: under
the account's row lock (and a process-local lock, which is what serializes
threads on SQLite) so concurrent workers refresh exactly once.

Also the account writes that are not a sync: linking, unlinking, the push
channel id and re-encrypting the tokens under a new key
(``rotate_token_encryption``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from cryptography.fernet import InvalidToken
from django.db import IntegrityError, router, transaction
from django.utils import timezone

from .client import CronofyClient, client_credentials, get_client
from .conf import app_settings
from .datacenters import DataCenter, get_data_center
from .db import row_lock_transaction, write_lock
from .exceptions import (
    AccessTokenRejected,
    CronofyError,
    InvalidGrant,
    InvalidResponse,
    ReauthorizationRequired,
    TokenDecryptionError,
)
from .fields import KEYS_SETTING, EncryptedValue, get_fernet, needs_rotation
from .models import LinkedAccount
from .payloads import TokenSet, parse_token_response
from .redaction import redact, remember_secret
from .signals import account_reauthorization_required

if TYPE_CHECKING:
    from .sync import SyncResult

logger = logging.getLogger(__name__)

# One per slot of account ids, held across the refresh (single flight between
# threads). Reentrant: the reauthorization signal is sent inside it, and a
# handler may refresh another account that falls in the same slot.
_REFRESH_LOCKS = tuple(threading.RLock() for _ in range(64))


def authorization_url(
    data_center: DataCenter | str,
    *,
    redirect_uri: str,
    state: str,
    scope: str | None = None,
    provider_name: str | None = None,
) -> str:
    """Where to send the browser: the chosen data center's app host."""
    dc = data_center if isinstance(data_center, DataCenter) else get_data_center(data_center)
    params = {
        "response_type": "code",
        "client_id": client_credentials()["client_id"],
        "redirect_uri": redirect_uri,
        "scope": scope or app_settings.SCOPE,
        "state": state,
    }
    if provider_name:
        params["provider_name"] = provider_name
    return dc.app("/oauth/authorize?" + urlencode(params))


def expires_at(tokens: TokenSet, now: datetime | None = None) -> datetime | None:
    if tokens.expires_in is None:
        return None
    return (now or timezone.now()) + timedelta(seconds=tokens.expires_in)


def exchange_code(
    data_center: str, code: str, redirect_uri: str, *, client: CronofyClient | None = None
) -> TokenSet:
    """Trade an authorization code for tokens at the data center's API host."""
    client = client or get_client(data_center)
    body = client.request_token(
        {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri},
        idempotent=False,
    )
    return parse_token_response(body, expect_sub=True)


def refresh_tokens(
    data_center: str, refresh_token: str, *, client: CronofyClient | None = None
) -> TokenSet:
    """Trade a refresh token for new tokens at the data center's API host; stores nothing.

    Cronofy may leave ``refresh_token`` out of the answer: the one sent stays
    valid then, and is what the returned ``TokenSet`` holds. A dead grant
    raises ``InvalidGrant``.
    """
    client = client or get_client(data_center)
    body = client.request_token(
        {"grant_type": "refresh_token", "refresh_token": refresh_token}, idempotent=True
    )
    tokens = parse_token_response(body, expect_sub=False)
    remember_secret(tokens.access_token)
    remember_secret(tokens.refresh_token)
    if not tokens.refresh_token:
        tokens = replace(tokens, refresh_token=refresh_token)
    return tokens


def revoke(account: LinkedAccount, *, client: CronofyClient | None = None) -> None:
    """Revoke the grant with the refresh token (it cannot have expired)."""
    token = account.refresh_token or account.access_token
    if not token:
        return
    (client or get_client(account.data_center)).revoke_token(token)


def ensure_access_token(account: LinkedAccount, *, client: CronofyClient | None = None) -> str:
    """The access token to use now, refreshed first when it expires within the margin."""
    if account.status != LinkedAccount.Status.ACTIVE:
        raise ReauthorizationRequired(
            f"Cronofy account {account.pk} needs to be connected again ({account.status})."
        )
    if not account.access_token:
        raise ReauthorizationRequired(f"Cronofy account {account.pk} has no access token stored.")
    if account.token_expires_within(app_settings.TOKEN_REFRESH_MARGIN):
        return refresh_access_token(account, client=client)
    return account.access_token


def _adopt(account: LinkedAccount, current: LinkedAccount) -> None:
    for name in ("access_token", "refresh_token", "token_expires_at", "status", "scope"):
        setattr(account, name, getattr(current, name))


def refresh_access_token(
    account: LinkedAccount,
    *,
    rejected_token: str | None = None,
    client: CronofyClient | None = None,
) -> str:
    """Refresh once across workers; returns the token to use and updates ``account``.

    ``rejected_token`` is the access token Cronofy just answered 401 to: if the
    stored one differs, another worker already refreshed and that one is used.
    """
    stale_token = rejected_token or account.access_token
    client = client or get_client(account.data_center)
    using = router.db_for_write(LinkedAccount)
    with _REFRESH_LOCKS[hash(account.pk) % len(_REFRESH_LOCKS)]:
        dead_grant: InvalidGrant | None = None
        with row_lock_transaction(using):
            current = (
                LinkedAccount.objects.using(using).select_for_update().filter(pk=account.pk).first()
            )
            if current is None:
                raise ReauthorizationRequired(f"Cronofy account {account.pk} no longer exists.")
            if current.status != LinkedAccount.Status.ACTIVE:
                _adopt(account, current)
                raise ReauthorizationRequired(
                    f"Cronofy account {account.pk} needs to be connected again ({current.status})."
                )
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
                dead_grant = exc
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
        raise dead_grant


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


def unlink(account: LinkedAccount, *, client: CronofyClient | None = None) -> bool:
    """Revoke the grant at Cronofy, then delete the account and its profiles.

    Returns whether the grant is gone at Cronofy (False only when the stored
    token could not be decrypted, see below).

    Cronofy answers 200 for a token it does not know, and ``invalid_grant``
    for a dead one: then the local delete proceeds. So it does when the stored
    token cannot be decrypted (its key is gone from ``ENCRYPTION_KEYS``): it
    can never be sent to Cronofy again, so there is nothing left to revoke
    with; the grant stays listed at Cronofy until the user removes the app
    there. Any other failure (unreachable, rate limited, ``invalid_client``
    from a wrong secret, ...) deletes nothing and propagates: the grant may
    still be alive, and without the stored token it could never be revoked.
    """
    revoked = True
    try:
        revoke(account, client=client)
    except InvalidGrant as exc:
        logger.info("Revoking Cronofy account %s: %s; deleting locally", account.pk, redact(exc))
    except TokenDecryptionError as exc:
        logger.warning(
            "Cronofy account %s: its stored token cannot be decrypted with any key in %s, "
            "so its grant cannot be revoked at Cronofy; deleting it locally. (%s)",
            account.pk,
            KEYS_SETTING,
            redact(exc),
        )
        revoked = False
    with write_lock(router.db_for_write(LinkedAccount, instance=account)):
        account.delete()
    return revoked


def create_conferencing_authorization(
    account: LinkedAccount,
    redirect_uri: str,
    provider_name: str | None = None,
    *,
    client: CronofyClient | None = None,
) -> str:
    """The Cronofy URL where the user links a new conferencing provider."""
    client = client or get_client(account.data_center)
    token = ensure_access_token(account, client=client)
    try:
        body = client.create_conferencing_service_authorization(token, redirect_uri, provider_name)
    except AccessTokenRejected:
        token = refresh_access_token(account, rejected_token=token, client=client)
        body = client.create_conferencing_service_authorization(token, redirect_uri, provider_name)
    url = (body.get("authorization_request") or {}).get("url") if isinstance(body, dict) else None
    if not isinstance(url, str) or urlsplit(url).scheme not in ("https", "http"):
        raise InvalidResponse(
            "Invalid conferencing service authorization response: "
            "authorization_request.url is missing or not a URL."
        )
    return url


def ensure_push_channel(account: LinkedAccount, *, client: CronofyClient | None = None) -> str:
    """Create the account's push notification channel when a callback URL is configured.

    Returns the channel id ('' when push notifications are not configured).
    """
    callback_url = app_settings.PUSH_NOTIFICATIONS_CALLBACK_URL
    if not callback_url:
        return ""
    if account.channel_id:
        return account.channel_id
    client = client or get_client(account.data_center)
    token = ensure_access_token(account, client=client)
    body = client.create_channel(token, callback_url)
    channel_id = (body.get("channel") or {}).get("channel_id") if isinstance(body, dict) else None
    if not isinstance(channel_id, str) or not channel_id or len(channel_id) > 255:
        raise InvalidResponse("Invalid channel response: channel.channel_id is missing.")
    using = router.db_for_write(LinkedAccount)
    with write_lock(using):
        LinkedAccount.objects.using(using).filter(pk=account.pk).update(channel_id=channel_id)
    account.channel_id = channel_id
    return channel_id


# -- linking ------------------------------------------------------------------


class AccountLinkConflict(CronofyError):
    """The Cronofy account is already linked to another user; nothing was changed."""


@dataclass
class LinkResult:
    """What ``link_account`` did: the account, whether it is new, and the first sync."""

    account: LinkedAccount
    created: bool
    sync_result: SyncResult | None = None
    sync_error: CronofyError | None = None

    @property
    def synced(self) -> bool:
        return self.sync_result is not None


def link_account(
    user: Any,
    data_center: DataCenter | str,
    tokens: TokenSet,
    *,
    sync: bool = True,
    client: CronofyClient | None = None,
) -> LinkResult:
    """Store ``tokens`` for ``user`` as the account (``data_center``, ``tokens.sub``).

    Creates the account, or updates the one this user (or no user) linked
    before: new tokens, status ``ACTIVE`` again. An account linked to another
    user raises ``AccountLinkConflict`` (``LINK_CONFLICT_MESSAGE``) and is left
    untouched. The write happens under the account's row lock; then, outside
    any lock, the first sync (a failure is recorded on the account and returned
    in ``sync_error``, the link stays) and the push channel (a failure is only
    logged).
    """
    dc = data_center if isinstance(data_center, DataCenter) else get_data_center(data_center)
    if user is None or getattr(user, "pk", None) is None:
        raise ValueError("link_account needs a saved user.")
    if not tokens.sub:
        raise ValueError("link_account needs the Cronofy account id (tokens.sub).")
    if not tokens.access_token or not tokens.refresh_token:
        raise ValueError("link_account needs both an access token and a refresh token.")
    remember_secret(tokens.access_token)
    remember_secret(tokens.refresh_token)
    using = router.db_for_write(LinkedAccount)
    token_fields = {
        "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token,
        "token_expires_at": expires_at(tokens),
        "status": LinkedAccount.Status.ACTIVE,
    }
    created = False
    with write_lock(using), transaction.atomic(using=using):
        locked = LinkedAccount.objects.using(using).select_for_update()
        account = locked.filter(data_center=dc.id, sub=tokens.sub).first()
        if account is None:
            try:
                with transaction.atomic(using=using):
                    account = LinkedAccount.objects.using(using).create(
                        user=user,
                        data_center=dc.id,
                        sub=tokens.sub,
                        scope=tokens.scope,
                        **token_fields,
                    )
                created = True
            except IntegrityError:
                # Linked concurrently by another request: wait for it, then update.
                account = locked.get(data_center=dc.id, sub=tokens.sub)
        if not created:
            if account.user_id is not None and account.user_id != user.pk:
                logger.warning(
                    "Refused to link Cronofy account %s (%s) for user %s: "
                    "it is linked to another user.",
                    account.pk,
                    dc.id,
                    user.pk,
                )
                raise AccountLinkConflict(str(app_settings.LINK_CONFLICT_MESSAGE))
            for name, value in token_fields.items():
                setattr(account, name, value)
            account.user = user
            if tokens.scope:
                account.scope = tokens.scope
            account.last_sync_error = ""
            account.consecutive_failures = 0
            account.save(
                using=using,
                update_fields=[
                    *token_fields,
                    "user",
                    "scope",
                    "last_sync_error",
                    "consecutive_failures",
                    "updated_at",
                ],
            )
    logger.info(
        "%s Cronofy account %s (%s) for user %s",
        "Linked" if created else "Relinked",
        account.pk,
        dc.id,
        user.pk,
    )
    result = LinkResult(account=account, created=created)
    if sync:
        from .sync import sync_account

        try:
            result.sync_result = sync_account(account, client=client)
        except CronofyError as exc:
            result.sync_error = exc
            logger.warning(
                "First sync of Cronofy account %s failed (the link stays): %s",
                account.pk,
                redact(exc),
            )
    try:
        ensure_push_channel(account, client=client)
    except Exception as exc:
        logger.warning(
            "Could not create the push notification channel of Cronofy account %s: %s",
            account.pk,
            redact(exc),
        )
    return result


# -- key rotation -------------------------------------------------------------

TOKEN_FIELDS = ("access_token", "refresh_token")


@dataclass
class RotationReport:
    """What ``rotate_token_encryption`` did (or would do), counted in accounts."""

    rotated: int = 0
    current: int = 0
    failed: int = 0
    #: Accounts with a token no configured key decrypts (their other token is rotated).
    failed_ids: list[int] = field(default_factory=list)


def rotate_token_encryption(
    batch_size: int = 500,
    *,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> RotationReport:
    """Re-encrypt every stored token with the first key of ``ENCRYPTION_KEYS``.

    Accounts are processed ``batch_size`` at a time, each batch in one
    transaction under the rows' lock, so a concurrent token refresh is never
    overwritten with an older token. Tokens are never decrypted to plain text
    here except inside ``MultiFernet.rotate``. ``dry_run`` counts without
    writing; ``progress`` is called with the last account id of each batch.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1.")
    report = RotationReport()
    using = router.db_for_write(LinkedAccount)
    last_pk = 0
    while True:
        pks = list(
            LinkedAccount.objects.using(using)
            .filter(pk__gt=last_pk)
            .order_by("pk")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not pks:
            return report
        last_pk = pks[-1]
        _rotate_batch(using, pks, dry_run, report)
        if progress is not None:
            progress(last_pk)


def _rotate_batch(using: str, pks: list[int], dry_run: bool, report: RotationReport) -> None:
    fernet = get_fernet()
    with write_lock(using), transaction.atomic(using=using):
        rows = (
            LinkedAccount.objects.using(using)
            .select_for_update()
            .filter(pk__in=pks)
            .order_by("pk")
            .values_list("pk", *TOKEN_FIELDS)
        )
        for pk, *values in rows:
            updates: dict[str, EncryptedValue] = {}
            failed = False
            for name, value in zip(TOKEN_FIELDS, values, strict=True):
                if not isinstance(value, EncryptedValue) or not value.ciphertext:
                    continue
                if not needs_rotation(value.ciphertext):
                    continue
                try:
                    rotated = fernet.rotate(value.ciphertext.encode("ascii"))
                except (InvalidToken, UnicodeError):
                    failed = True
                    continue
                updates[name] = EncryptedValue(rotated.decode("ascii"))
            if failed:
                report.failed += 1
                report.failed_ids.append(pk)
            elif updates:
                report.rotated += 1
            else:
                report.current += 1
            if updates and not dry_run:
                # Decryptable tokens of a partly broken account are rotated too.
                LinkedAccount.objects.using(using).filter(pk=pk).update(**updates)
