"""Platform webhook -> ChatEvent, pure (no I/O)."""

from __future__ import annotations

from shared.chat_platform.tiktok_messages import PlatformMessage
from shared.events import ChatEvent, ChatEventKind


def chat_event_from_message(shop_id: str, msg: PlatformMessage, *, buyer_name: str,
                            received_at_ms: int) -> ChatEvent | None:
    """The event to publish for a platform message, or None for platform-internal ones.

    A seller/agent message becomes SELLER_MESSAGE (it clears the pending digest);
    SYSTEM/ROBOT messages and messages hidden from customer service are ignored.
    """
    kind = msg.event_kind
    if kind is None or (kind == ChatEventKind.BUYER_MESSAGE and not msg.is_visible):
        return None
    seq = int(msg.index) if msg.index.isdigit() else 0
    return ChatEvent(
        kind=kind,
        shop_id=shop_id,
        conversation_id=msg.conversation_id,
        message_id=msg.message_id,
        sent_at_ms=msg.create_time_s * 1000,
        seq=seq,
        buyer_id=msg.sender_id if kind == ChatEventKind.BUYER_MESSAGE else "",
        buyer_name=buyer_name if kind == ChatEventKind.BUYER_MESSAGE else "",
        content=msg.content if kind == ChatEventKind.BUYER_MESSAGE else None,
        received_at_ms=received_at_ms,
    )
