"""Platform message -> ChatEvent, and the recent-id memory that drops redeliveries. Pure."""

from __future__ import annotations

from collections import OrderedDict

from shared.chat_platform.base import PlatformMessage
from shared.events import ChatEvent, ChatEventKind


def chat_event_from_message(
    shop_id: str, msg: PlatformMessage, *, buyer_name: str, received_at_ms: int
) -> ChatEvent | None:
    """The event to publish for a platform message, or None for platform-internal ones.

    A seller/agent message becomes SELLER_MESSAGE and a read marker READ (both
    clear the pending digest in the consolidator); SYSTEM/ROBOT messages and
    buyer messages hidden from customer service are ignored.
    """
    kind = msg.event_kind
    if kind is None or (kind == ChatEventKind.BUYER_MESSAGE and not msg.is_visible):
        return None
    seq = int(msg.index) if msg.index else 0  # checked by the adapter: 0..2**64-1 digits
    buyer = kind == ChatEventKind.BUYER_MESSAGE
    return ChatEvent(
        kind=kind,
        shop_id=shop_id,
        conversation_id=msg.conversation_id,
        message_id=msg.message_id,
        sent_at_ms=msg.create_time_s * 1000,
        seq=seq,
        buyer_id=msg.sender_id if buyer else "",
        buyer_name=buyer_name if buyer else "",
        content=msg.content if buyer else None,
        received_at_ms=received_at_ms,
    )


class RecentIds:
    """The last ``capacity`` ids seen (insertion order), for dropping redelivered webhooks.

    Per process and bounded: a redelivery that lands on another replica, or
    after eviction, is published again and the consolidator drops it by
    message id, so this is a cost saver, not the correctness mechanism.
    """

    def __init__(self, capacity: int) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity

    def __contains__(self, key: str) -> bool:
        return key in self._ids

    def add(self, key: str) -> None:
        self._ids[key] = None
        if len(self._ids) > self._capacity:
            self._ids.popitem(last=False)
