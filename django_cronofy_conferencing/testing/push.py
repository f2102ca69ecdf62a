"""Push notifications as Cronofy sends them: a signed POST to a channel's callback."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterable
from urllib.parse import urlsplit

from .simulator import SimulatedCronofy


def post_notification(
    sim: SimulatedCronofy,
    sub: str | None,
    notification_type: str = "profile_disconnected",
    *,
    channel_id: str | None = None,
    callback_url: str | None = None,
    secrets: Iterable[str] | None = None,
    signature: str | None = None,
    body: bytes | None = None,
    timeout: float = 10,
) -> tuple[int, bytes]:
    """POST a push notification to a channel's callback URL, as Cronofy does.

    By default the account's channel, signed with the client secret of the
    simulator's application in the account's data center. ``secrets`` signs
    with each of them (comma-separated, as during a rotation); ``signature``
    sends that header value as is (``""`` sends none);
    ``channel_id``/``callback_url``/``body`` override the notification.
    Returns the receiver's status and body.
    """
    if body is None and channel_id is None and sub is not None:
        body, _ = sim.notification(sub, notification_type)
    with sim.lock:
        if callback_url is None:
            if body is not None:
                channel_id = channel_id or json.loads(body)["channel"]["channel_id"]
            channel = sim.channels.get(channel_id or "")
            if channel is None:
                raise ValueError("post_notification: give callback_url for an unknown channel")
            callback_url = channel["callback_url"]
    if body is None:
        body = json.dumps(
            {
                "notification": {"type": notification_type},
                "channel": {"channel_id": channel_id, "callback_url": callback_url, "filters": {}},
            }
        ).encode()
    headers = {"Content-Type": "application/json"}
    if signature is None:
        if not secrets:
            # Signed by the application of the channel's account's data center.
            owner = sim.accounts.get((sim.channels.get(channel_id or "") or {}).get("sub", ""))
            dc = owner.data_center if owner is not None else None
            secrets = [sim.credentials_for(dc)[1]]
        signature = ",".join(sim.sign(body, secret) for secret in secrets)
    if signature:
        headers["Cronofy-HMAC-SHA256"] = signature
    if urlsplit(callback_url).scheme not in ("http", "https"):
        raise ValueError("post_notification: the callback URL must be http(s)")
    request = urllib.request.Request(  # noqa: S310 (http(s) only, checked above)
        callback_url, data=body, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
