"""Linking a Cronofy account, above the sync service: authorization URL, code
exchange, link (first sync, push channel), unlink, conferencing service authorization.

Data flows one way: this module uses ``tokens`` and ``sync``; neither imports it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.db import IntegrityError, router, transaction
from django.views.decorators.debug import sensitive_variables

from ..conf import app_settings
from ..cronofy.client import CronofyClient, client_credentials, get_client
from ..cronofy.datacenters import DataCenter, get_data_center
from ..cronofy.redaction import redact, remember_secret
from ..cronofy.tokens import TokenSet, parse_token_response
from ..cronofy.userinfo import parse_userinfo
from ..db import write_lock
from ..exceptions import (
    AccessTokenRejected,
    AccountLinkConflict,
    CronofyError,
    InvalidGrant,
    InvalidResponse,
    TokenDecryptionError,
)
from ..fields import KEYS_SETTING, sealed
from ..models import LinkedAccount
from ..sync.service import SyncResult, sync_account
from .channels import ensure_push_channel
from .tokens import ensure_access_token, expires_at, refresh_access_token, revoke

logger = logging.getLogger(__name__)


__all__ = [
    "AccountLinkConflict",
    "LinkResult",
    "authorization_url",
    "create_conferencing_authorization",
    "exchange_code",
    "link_account",
    "unlink",
]


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
        "client_id": client_credentials(dc.id)["client_id"],
        "redirect_uri": redirect_uri,
        "scope": scope or app_settings.SCOPE,
        "state": state,
    }
    if provider_name:
        params["provider_name"] = provider_name
    return dc.app("/oauth/authorize?" + urlencode(params))


@sensitive_variables("code", "body")
def exchange_code(
    data_center: str, code: str, redirect_uri: str, *, client: CronofyClient | None = None
) -> TokenSet:
    """Trade an authorization code for tokens at the data center's API host."""
    client = client or get_client(data_center)
    body = client.request_token(
        {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri},
        idempotent=False,
    )
    tokens = parse_token_response(body, expect_sub=True)
    if not tokens.sub:
        # No sub in the answer (seen in Cronofy's SDK test suites): ask UserInfo whose
        # tokens these are rather than guess (account_id is not always there either).
        remember_secret(tokens.access_token)
        info = parse_userinfo(client.userinfo(tokens.access_token))
        tokens = replace(tokens, sub=info.sub)
    return tokens


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


@sensitive_variables("token")
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


@sensitive_variables("tokens", "token_fields")
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
    # Sealed (encrypted) here, so no frame of the ORM holds a plain token: a database
    # error on this write is reported with Django's frames' variables (fields.sealed).
    token_fields = {
        "access_token": sealed(tokens.access_token),
        "refresh_token": sealed(tokens.refresh_token),
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
