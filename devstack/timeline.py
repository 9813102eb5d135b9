"""What one Kafka record says about a conversation, in one line: the playground's timeline.
Pure: a record's topic, key, value and headers in, the conversation it belongs to and a
summary out (None for records about no conversation, such as the consolidator's ticks).

Every conversation topic is keyed ``shop_id:conversation_id`` except ``mail.outcomes``
(keyed by digest id) and ``chat.deliveries`` (by part key); their payloads name the
conversation, so the payload decides, and the key only where the payload says nothing
(dead letters hold where a record is, not what it says).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shared.codec import DecodeError, decode
from shared.events import (
    ChatEvent,
    ChatEventKind,
    ChatReply,
    DeadLetter,
    Digest,
    InboundEnvelope,
    InboundResult,
    MailNotice,
    MailOutcome,
    PartDelivery,
    conversation_key,
)
from shared.topics import (
    CHAT_DELIVERIES,
    CHAT_EVENTS,
    CHAT_REPLIES,
    DEAD_LETTER,
    MAIL_DIGESTS,
    MAIL_INBOUND,
    MAIL_INBOUND_RESULTS,
    MAIL_NOTICES,
    MAIL_OUTCOMES,
    TopicSpec,
)

# In the order a conversation's loop goes through them.
TIMELINE_TOPICS: tuple[TopicSpec, ...] = (
    CHAT_EVENTS,
    MAIL_DIGESTS,
    MAIL_OUTCOMES,
    MAIL_NOTICES,
    MAIL_INBOUND,
    MAIL_INBOUND_RESULTS,
    CHAT_REPLIES,
    CHAT_DELIVERIES,
    DEAD_LETTER,
)
SUMMARY_MAX_CHARS = 160


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    topic: str
    partition: int
    offset: int
    at_ms: int  # the record's timestamp
    conversation: str  # shop_id:conversation_id
    summary: str
    mail_id: str = ""  # an inbound mail's id (mail.inbound, mail.inbound.results)


def _short(text: str) -> str:
    one_line = " ".join(text.split())
    if len(one_line) <= SUMMARY_MAX_CHARS:
        return one_line
    return one_line[: SUMMARY_MAX_CHARS - 1] + "…"


def _chat_event(event: ChatEvent) -> str | None:
    if event.kind == ChatEventKind.TICK:
        return None
    content = event.content
    what = ""
    if content is not None:
        detail = content.text or content.title or content.order_id or content.url
        what = f" {content.kind}" + (f": {detail}" if detail else "")
    who = {
        ChatEventKind.BUYER_MESSAGE: f"buyer {event.buyer_name or event.buyer_id} wrote",
        ChatEventKind.SELLER_MESSAGE: "seller answered in the chat tool",
        ChatEventKind.READ: "seller read the conversation in the chat tool",
        ChatEventKind.EMAIL_REPLY: "seller's email reply reached the chat",
    }.get(ChatEventKind(event.kind), event.kind)
    return _short(who + what)


def describe(
    topic: str, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]
) -> tuple[str, str, str] | None:
    """(conversation key, summary, inbound mail id) of one record, or None when it belongs
    to no conversation or cannot be read (the timeline shows what it can, never fails)."""
    try:
        return _describe(topic, key, value or b"", dict(headers))
    except (DecodeError, ValueError):
        return None


def _describe(
    topic: str, key: bytes | None, value: bytes, headers: dict[str, bytes]
) -> tuple[str, str, str] | None:
    if topic == CHAT_EVENTS.name:
        event = decode(ChatEvent, value)
        text = _chat_event(event)
        return None if text is None else (event.conversation_key, text, "")
    if topic == MAIL_DIGESTS.name:
        digest = decode(Digest, value)
        return (
            conversation_key(digest.shop_id, digest.conversation_id),
            f"digest {digest.digest_id} of {len(digest.messages)} message(s) due for "
            f"{digest.destination_email or 'the default inbox'} ({digest.destination_kind})",
            "",
        )
    if topic == MAIL_OUTCOMES.name:
        outcome = decode(MailOutcome, value)
        code = f" {outcome.smtp_code}" if outcome.smtp_code else ""
        why = f": {outcome.reason}" if outcome.reason else ""
        return (
            conversation_key(outcome.shop_id, outcome.conversation_id),
            _short(f"digest {outcome.digest_id} {outcome.status}{code}{why}"),
            "",
        )
    if topic == MAIL_NOTICES.name:
        notice = decode(MailNotice, value)
        if not notice.conversation_id:
            return None
        return (
            conversation_key(notice.shop_id, notice.conversation_id),
            _short(f"notice ({notice.kind}) to {notice.to_address}: {notice.subject}"),
            "",
        )
    if topic == MAIL_INBOUND.name:
        env = decode(InboundEnvelope, headers.get("envelope", b""))
        return (
            conversation_key(env.shop_id, env.conversation_id),
            f"mail {env.mail_id} from {env.mail_from or '<>'} accepted by the reply front "
            f"({len(value)} bytes)",
            env.mail_id,
        )
    if topic == MAIL_INBOUND_RESULTS.name:
        result = decode(InboundResult, value)
        parts = f", {result.parts} chat part(s)" if result.parts else ""
        return (
            conversation_key(result.shop_id, result.conversation_id),
            _short(f"mail {result.mail_id}: {result.classification}{parts}: {result.reason}"),
            result.mail_id,
        )
    if topic == CHAT_REPLIES.name:
        reply = decode(ChatReply, value)
        return (
            conversation_key(reply.shop_id, reply.conversation_id),
            f"reply {reply.reply_id} from {reply.sender or 'the seller'} in "
            f"{len(reply.parts)} part(s)",
            reply.mail_id,
        )
    if topic == CHAT_DELIVERIES.name:
        delivery = decode(PartDelivery, value)
        part = "parts" if delivery.index < 0 else f"part {delivery.index + 1}"
        why = f": {delivery.reason}" if delivery.reason else ""
        return (
            conversation_key(delivery.shop_id, delivery.conversation_id),
            _short(f"reply {delivery.reply_id} {part} {delivery.status}{why}"),
            "",
        )
    if topic == DEAD_LETTER.name:
        letter = decode(DeadLetter, value)
        where = letter.key or (key or b"").decode("utf-8", "replace")
        if where.count(":") != 1:
            return None
        return (
            where,
            _short(f"dead letter from {letter.service} ({letter.source_topic}): {letter.reason}"),
            "",
        )
    return None
