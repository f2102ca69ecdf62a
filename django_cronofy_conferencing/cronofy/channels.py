"""Parsing Cronofy's push-channel answers (``GET /v1/channels``, ``POST /v1/channels``)."""

from __future__ import annotations

import re
from typing import Any

from ..exceptions import InvalidResponse

MAX_CHANNEL_ID = 255
_CHANNEL_ID = re.compile(r"^[\x21-\x7e]{1,255}\Z")


def channel_id_of(value: Any) -> str | None:
    """A plausible channel id (short printable ASCII), or None."""
    return value if isinstance(value, str) and _CHANNEL_ID.match(value) else None


def parse_channels(body: Any) -> list[dict[str, str]]:
    """``[{"channel_id", "callback_url"}, ...]`` from a channel list, or ``InvalidResponse``."""
    items = body.get("channels") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise InvalidResponse("Invalid channels response: channels must be an array.")
    channels = []
    for item in items[:1000]:
        channel_id = channel_id_of(item.get("channel_id")) if isinstance(item, dict) else None
        if channel_id is None:
            raise InvalidResponse("Invalid channels response: a channel_id is missing.")
        callback = item.get("callback_url")
        channels.append(
            {
                "channel_id": channel_id,
                "callback_url": callback if isinstance(callback, str) else "",
            }
        )
    return channels
