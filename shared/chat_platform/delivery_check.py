"""Was a reply part already posted? The check that stands in for a missing idempotency key.

The TikTok Shop API has no idempotency key on Send Message. The fan-out records
an "attempting" marker before posting; when a part has a marker but no delivery
record (a crash, or an ambiguous 5xx/timeout), it lists the conversation's
messages since the marker and asks :func:`leading_parts_already_posted`. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from shared.chat_platform.base import SELLER_ROLES, OutgoingMessage, PlatformMessage


def _normalised(content_json: str) -> Any:
    # The platform may re-serialise the JSON string (spacing, key order): compare values.
    try:
        return orjson.loads(content_json)
    except orjson.JSONDecodeError:
        return content_json


def same_message(part: OutgoingMessage, msg: PlatformMessage) -> bool:
    """True when ``msg`` is the shop's message with exactly ``part``'s type and content."""
    if msg.sender_role not in SELLER_ROLES or msg.raw_type != part.msg_type:
        return False
    mine, theirs = _normalised(part.content_json), _normalised(msg.raw_content)
    if part.msg_type == "IMAGE" and isinstance(mine, dict) and isinstance(theirs, dict):
        return mine.get("url") == theirs.get("url")  # width/height may be filled in
    return bool(mine == theirs)


def leading_parts_already_posted(
    parts: Sequence[OutgoingMessage], shop_messages: Sequence[PlatformMessage]
) -> int:
    """How many of ``parts`` (in order) already appear, in order, among ``shop_messages``.

    Parts are posted strictly in order, so if part k was never posted, neither
    was any later part: the answer is a prefix length. Matching walks forward
    so two identical parts need two identical messages.
    """
    count = 0
    pos = 0
    for part in parts:
        for j in range(pos, len(shop_messages)):
            if same_message(part, shop_messages[j]):
                count += 1
                pos = j + 1
                break
        else:
            break
    return count
