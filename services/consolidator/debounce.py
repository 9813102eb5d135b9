"""The per-conversation debounce, as pure functions over a small state object.

A conversation's unread buyer messages are held and released as ONE digest at
their deadline (how long each shop waits is the notification window rule,
:mod:`shared.notification_window`). Seller activity in the chat tool (a
message, a read, an email reply) removes the messages it covers. Every time
used here comes from the events themselves (the ingest's receipt time, the
platform's message time, the tick's time), never from a clock read here, so a
replay after a crash reaches the same decisions as the first run, and the
same messages always give the same digest id.

The state is stored as compact bytes (:func:`encode_state`): a fixed header
holding the deadline, the partition and the time the conversation was last
touched, so the deadline index can be rebuilt, and idle states expired
(:func:`idle_expired`), without parsing, then an orjson list.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field, fields

import orjson

from shared.errors import BridgeError
from shared.events import (
    ChatContent,
    ChatEvent,
    Digest,
    DigestMessage,
    ShopSettings,
)
from shared.notification_window import Windows, digest_deadline
from shared.region_time import digest_time_zone

# Ids of already-emailed (or dropped) messages kept per conversation: the consolidator's
# idempotency, a redelivered message is not held again (docs/exactly-once.md).
EMAILED_MEMORY = 128
# Earlier digests remembered for threading (References header).
THREAD_MEMORY = 20

STATE_FORMAT = 2
_HEADER = struct.Struct(">Bqhq")  # format version, due_at_ms, partition, touched_at_ms
_HEADER_V1 = struct.Struct(">Bqh")  # format 1: no touched_at_ms (read as 0: never touched)
_CONTENT_DEFAULTS = {f.name: f.default for f in fields(ChatContent)}


@dataclass(slots=True)
class ConversationState:
    """What the consolidator holds for one conversation between two digests."""

    partition: int = -1
    buyer_id: str = ""
    buyer_name: str = ""
    pending: list[DigestMessage] = field(default_factory=list)  # in platform order
    first_pending_at_ms: int = 0
    last_buyer_at_ms: int = 0  # receipt time of the latest pending buyer message
    due_at_ms: int = 0  # 0: nothing pending
    read_until_ms: int = 0  # seller activity watermark (platform time) ...
    read_until_seq: int = 0  # ... and the platform sequence at it (0: the whole millisecond)
    emailed_ids: list[str] = field(default_factory=list)
    digest_ids: list[str] = field(default_factory=list)
    # Ingest/tick time of the latest event applied: idle states expire a TTL after it.
    touched_at_ms: int = 0

    @property
    def is_idle(self) -> bool:
        """Nothing worth storing: no pending message and no memory of earlier ones."""
        return (
            not self.pending
            and not self.digest_ids
            and not self.emailed_ids
            and not self.read_until_ms
        )


class StateFormatError(BridgeError, ValueError):
    """Stored state bytes are not in a format this version understands."""


def encode_state(st: ConversationState) -> bytes:
    """Compact bytes: header (version, deadline, partition) + orjson list body."""
    body = orjson.dumps(
        [
            st.buyer_id,
            st.buyer_name,
            st.first_pending_at_ms,
            st.last_buyer_at_ms,
            st.read_until_ms,
            st.read_until_seq,
            [[m.message_id, m.sent_at_ms, m.seq, _content_to_dict(m.content)] for m in st.pending],
            st.emailed_ids,
            st.digest_ids,
        ]
    )
    return _HEADER.pack(STATE_FORMAT, st.due_at_ms, st.partition, st.touched_at_ms) + body


def decode_state(data: bytes) -> ConversationState:
    """Inverse of :func:`encode_state` (format 1 states read too)."""
    version, due, partition = state_header(data)
    header = _HEADER if version == STATE_FORMAT else _HEADER_V1
    touched = _HEADER.unpack_from(data)[3] if version == STATE_FORMAT else 0
    (buyer_id, buyer_name, first, last, read_ms, read_seq, pending, emailed, digests) = (
        orjson.loads(data[header.size :])
    )
    return ConversationState(
        partition=partition,
        buyer_id=buyer_id,
        buyer_name=buyer_name,
        pending=[
            DigestMessage(mid, sent, _content_from_dict(content), seq)
            for mid, sent, seq, content in pending
        ],
        first_pending_at_ms=first,
        last_buyer_at_ms=last,
        due_at_ms=due,
        read_until_ms=read_ms,
        read_until_seq=read_seq,
        emailed_ids=emailed,
        digest_ids=digests,
        touched_at_ms=touched,
    )


def state_header(data: bytes) -> tuple[int, int, int]:
    """(format version, due_at_ms, partition) without parsing the body."""
    version = data[0] if data else -1
    header = _HEADER if version == STATE_FORMAT else _HEADER_V1 if version == 1 else None
    if header is None or len(data) < header.size:
        raise StateFormatError(f"unknown conversation state format {data[:1]!r}")
    _, due, partition = _HEADER_V1.unpack_from(data)  # the same first fields in both
    return version, due, partition


def idle_expired(data: bytes, now_ms: int, ttl_ms: int) -> bool:
    """Is this a state with nothing pending, untouched for ``ttl_ms`` at ``now_ms``?

    What such a state still holds (ids already emailed, earlier digests for
    threading, the read watermark) only matters for events about as recent as
    the conversation's last one; keeping it forever would grow the store with
    every conversation ever seen. A format-1 state has no touch time and, when
    idle, expires at the first look. Nothing pending is ever expired.
    """
    version, due, _ = state_header(data)
    if due != 0:
        return False
    return version != STATE_FORMAT or _HEADER.unpack_from(data)[3] + ttl_ms <= now_ms


def _content_from_dict(content: dict[str, object]) -> ChatContent:
    if "item_names" in content:  # JSON has no tuples
        content = {**content, "item_names": tuple(content["item_names"])}  # type: ignore[arg-type]
    return ChatContent(**content)  # type: ignore[arg-type]


def _content_to_dict(content: ChatContent) -> dict[str, object]:
    # Only the fields that differ from the defaults: a text message stores its text.
    return {
        name: value
        for name, default in _CONTENT_DEFAULTS.items()
        if (value := getattr(content, name)) != default
    }


def _order(m: DigestMessage) -> tuple[int, int, str]:
    return (m.sent_at_ms, m.seq, m.message_id)


def is_covered(state: ConversationState, sent_at_ms: int, seq: int) -> bool:
    """Has seller activity already covered a buyer message sent at ``sent_at_ms``/``seq``?"""
    if sent_at_ms < state.read_until_ms:
        return True
    if sent_at_ms == state.read_until_ms and sent_at_ms:
        # Platform times have second granularity: within the same instant the
        # sequence decides, and a watermark without a sequence covers it all.
        return state.read_until_seq == 0 or seq == 0 or seq <= state.read_until_seq
    return False


def add_buyer_message(state: ConversationState, event: ChatEvent, windows: Windows) -> bool:
    """Hold a buyer message; False when it is a redelivery, already emailed or already read.

    The deadline runs from the latest receipt among the pending messages, capped at
    ``max_wait`` after the first one; a late (out-of-order) message takes its
    platform-order place among the pending ones.
    """
    mid = event.message_id
    if mid in state.emailed_ids or any(m.message_id == mid for m in state.pending):
        return False
    if is_covered(state, event.sent_at_ms, event.seq):
        return False
    msg = DigestMessage(mid, event.sent_at_ms, event.content or ChatContent(), event.seq)
    pending = state.pending
    pending.append(msg)
    if len(pending) > 1 and _order(pending[-2]) > _order(msg):
        pending.sort(key=_order)
    if event.buyer_name:
        state.buyer_name = event.buyer_name
    if event.buyer_id:
        state.buyer_id = event.buyer_id
    arrived = event.arrived_at_ms
    if len(pending) == 1:
        state.first_pending_at_ms = arrived
        state.last_buyer_at_ms = arrived
    else:
        state.first_pending_at_ms = min(state.first_pending_at_ms, arrived)
        state.last_buyer_at_ms = max(state.last_buyer_at_ms, arrived)
    state.due_at_ms = digest_deadline(state.first_pending_at_ms, state.last_buyer_at_ms, windows)
    return True


def cover_by_seller(state: ConversationState, until_ms: int, until_seq: int = 0) -> int:
    """Drop pending messages the seller has seen; returns how many were dropped.

    The watermark only moves forward; a later-arriving older read changes nothing.
    """
    if until_ms > state.read_until_ms:
        state.read_until_ms, state.read_until_seq = until_ms, until_seq
    elif until_ms == state.read_until_ms and state.read_until_seq:
        # Same instant: a watermark without a sequence covers the whole instant.
        state.read_until_seq = 0 if until_seq == 0 else max(until_seq, state.read_until_seq)
    kept: list[DigestMessage] = []
    for m in state.pending:
        if is_covered(state, m.sent_at_ms, m.seq):
            _remember(state.emailed_ids, m.message_id, EMAILED_MEMORY)
        else:
            kept.append(m)
    dropped = len(state.pending) - len(kept)
    state.pending = kept
    if not kept:
        _clear_deadline(state)
    return dropped


def drop_pending(state: ConversationState) -> int:
    """Forget pending messages (alerts turned off); returns how many were dropped."""
    dropped = len(state.pending)
    for m in state.pending:
        _remember(state.emailed_ids, m.message_id, EMAILED_MEMORY)
    state.pending = []
    _clear_deadline(state)
    return dropped


def digest_id_for(shop_id: str, conversation_id: str, message_ids: list[str]) -> str:
    """Deterministic digest id, the mailer's idempotency key: the same messages always
    give the same id (docs/exactly-once.md)."""
    h = hashlib.sha256(f"{shop_id}:{conversation_id}".encode())
    for mid in sorted(message_ids):
        h.update(b"\x00" + mid.encode())
    return h.hexdigest()[:32]


def release_digest(
    state: ConversationState, shop: ShopSettings, conversation_id: str, now_ms: int
) -> Digest | None:
    """If the deadline has passed, build the digest and clear what it holds."""
    if not state.pending or state.due_at_ms == 0 or state.due_at_ms > now_ms:
        return None
    messages = tuple(state.pending)
    digest_id = digest_id_for(shop.shop_id, conversation_id, [m.message_id for m in messages])
    digest = Digest(
        digest_id=digest_id,
        shop_id=shop.shop_id,
        conversation_id=conversation_id,
        buyer_id=state.buyer_id,
        buyer_name=state.buyer_name,
        messages=messages,
        previous_digest_ids=tuple(state.digest_ids),
        shop_name=shop.shop_name,
        region=shop.region,
        destination_email=shop.destination_email,
        destination_kind=shop.destination_kind,
        due_at_ms=state.due_at_ms,
        created_at_ms=now_ms,
        time_zone=digest_time_zone(shop.region, shop.time_zone),
    )
    for m in messages:
        _remember(state.emailed_ids, m.message_id, EMAILED_MEMORY)
    _remember(state.digest_ids, digest_id, THREAD_MEMORY)
    state.pending = []
    _clear_deadline(state)
    return digest


def _clear_deadline(state: ConversationState) -> None:
    state.due_at_ms = 0
    state.first_pending_at_ms = 0
    state.last_buyer_at_ms = 0


def _remember(bounded: list[str], item: str, cap: int) -> None:
    bounded.append(item)
    if len(bounded) > cap:
        del bounded[: len(bounded) - cap]
