"""The per-conversation debounce, as pure functions over a small state object.

A conversation's unread buyer messages are held and released as ONE digest
``window`` after the buyer's LAST message, or ``max_wait`` after the first
pending one, whichever comes first. Seller activity in the chat tool (a
message, a read, an email reply) removes the messages it covers. Times are
the ingest's receipt times carried in the events, so a replay after a crash
reaches the same decisions as the first run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import orjson

from shared.codec import from_dict
from shared.events import ChatContent, ChatEvent, Digest, DigestMessage, ShopSettings

# Ids of already-emailed messages kept per conversation to drop redeliveries.
EMAILED_MEMORY = 256
# Earlier digests remembered for threading (References header).
THREAD_MEMORY = 20


@dataclass(slots=True)
class ConversationState:
    partition: int = -1
    buyer_id: str = ""
    buyer_name: str = ""
    pending: list[DigestMessage] = field(default_factory=list)
    first_pending_at_ms: int = 0
    due_at_ms: int = 0  # 0: nothing pending
    emailed_ids: list[str] = field(default_factory=list)
    digest_ids: list[str] = field(default_factory=list)
    read_until_ms: int = 0  # seller activity watermark (platform time)

    @property
    def is_idle(self) -> bool:
        return not self.pending and not self.digest_ids and not self.emailed_ids

    def to_bytes(self) -> bytes:
        return orjson.dumps({
            "p": self.partition, "b": self.buyer_id, "n": self.buyer_name,
            "m": [_msg_to_list(m) for m in self.pending], "f": self.first_pending_at_ms,
            "d": self.due_at_ms, "e": self.emailed_ids, "g": self.digest_ids,
            "r": self.read_until_ms,
        })

    @classmethod
    def from_bytes(cls, data: bytes) -> ConversationState:
        raw = orjson.loads(data)
        return cls(
            partition=raw["p"], buyer_id=raw["b"], buyer_name=raw["n"],
            pending=[_msg_from_list(m) for m in raw["m"]], first_pending_at_ms=raw["f"],
            due_at_ms=raw["d"], emailed_ids=raw["e"], digest_ids=raw["g"],
            read_until_ms=raw["r"],
        )


def _msg_to_list(m: DigestMessage) -> list[object]:
    return [m.message_id, m.sent_at_ms, m.seq, m.content]


def _msg_from_list(raw: list[object]) -> DigestMessage:
    message_id, sent_at_ms, seq, content = raw
    return DigestMessage(message_id=str(message_id), sent_at_ms=int(sent_at_ms),  # type: ignore[call-overload]
                         seq=int(seq), content=from_dict(ChatContent, content))  # type: ignore[call-overload]


@dataclass(frozen=True, slots=True)
class Windows:
    """How long to wait, for one shop, in milliseconds."""

    quiet_ms: int
    max_wait_ms: int


def windows_for(shop: ShopSettings, *, mailbox_s: float, helpdesk_s: float, max_wait_s: float,
                min_override_s: float = 60.0, max_override_s: float = 3600.0) -> Windows:
    """15 min for a mailbox, 5 for a helpdesk, or the shop's override clamped to sane bounds."""
    from shared.events import DestinationKind

    try:
        kind = DestinationKind(shop.destination_kind)
    except ValueError:
        kind = DestinationKind.OTHER_HELPDESK
    quiet = helpdesk_s if kind.is_helpdesk else mailbox_s
    if shop.window_override_s is not None:
        quiet = min(max(float(shop.window_override_s), min_override_s), max_override_s)
    quiet = min(quiet, max_wait_s)
    return Windows(int(quiet * 1000), int(max_wait_s * 1000))


def _order(m: DigestMessage) -> tuple[int, int, str]:
    return (m.sent_at_ms, m.seq, m.message_id)


def add_buyer_message(state: ConversationState, event: ChatEvent, windows: Windows) -> bool:
    """Hold a buyer message; returns False when it is a redelivery or already read."""
    if event.message_id in state.emailed_ids or any(
            m.message_id == event.message_id for m in state.pending):
        return False
    if event.sent_at_ms and event.sent_at_ms <= state.read_until_ms:
        return False  # the seller already saw it in the chat tool
    msg = DigestMessage(event.message_id, event.sent_at_ms, event.content or ChatContent(),
                        event.seq)
    state.pending.append(msg)
    state.pending.sort(key=_order)
    if event.buyer_name:
        state.buyer_name = event.buyer_name
    if event.buyer_id:
        state.buyer_id = event.buyer_id
    arrived = event.received_at_ms
    if len(state.pending) == 1:
        state.first_pending_at_ms = arrived
    quiet_due = max(arrived + windows.quiet_ms, state.due_at_ms if len(state.pending) > 1 else 0)
    state.due_at_ms = min(quiet_due, state.first_pending_at_ms + windows.max_wait_ms)
    return True


def cover_by_seller(state: ConversationState, until_ms: int) -> int:
    """Drop pending messages the seller has seen (sent at or before ``until_ms``)."""
    state.read_until_ms = max(state.read_until_ms, until_ms)
    before = len(state.pending)
    state.pending = [m for m in state.pending if m.sent_at_ms > state.read_until_ms]
    if not state.pending:
        state.due_at_ms = 0
        state.first_pending_at_ms = 0
    return before - len(state.pending)


def drop_pending(state: ConversationState) -> int:
    """Forget pending messages (alerts turned off); returns how many were dropped."""
    dropped = len(state.pending)
    for m in state.pending:
        _remember(state.emailed_ids, m.message_id, EMAILED_MEMORY)
    state.pending = []
    state.due_at_ms = 0
    state.first_pending_at_ms = 0
    return dropped


def digest_id_for(shop_id: str, conversation_id: str, message_ids: list[str]) -> str:
    """Deterministic digest id: the same messages always give the same id."""
    h = hashlib.sha256(f"{shop_id}:{conversation_id}".encode())
    for mid in sorted(message_ids):
        h.update(b"\x00" + mid.encode())
    return h.hexdigest()[:32]


def release_digest(state: ConversationState, shop: ShopSettings, conversation_id: str,
                   now_ms: int) -> Digest | None:
    """If the deadline has passed, build the digest and clear what it holds."""
    if not state.pending or state.due_at_ms == 0 or state.due_at_ms > now_ms:
        return None
    messages = tuple(state.pending)
    digest_id = digest_id_for(shop.shop_id, conversation_id, [m.message_id for m in messages])
    digest = Digest(
        digest_id=digest_id, shop_id=shop.shop_id, conversation_id=conversation_id,
        buyer_id=state.buyer_id, buyer_name=state.buyer_name, messages=messages,
        previous_digest_ids=tuple(state.digest_ids), shop_name=shop.shop_name,
        region=shop.region, destination_email=shop.destination_email,
        destination_kind=shop.destination_kind, due_at_ms=state.due_at_ms, created_at_ms=now_ms,
    )
    for m in messages:
        _remember(state.emailed_ids, m.message_id, EMAILED_MEMORY)
    _remember(state.digest_ids, digest_id, THREAD_MEMORY)
    state.pending = []
    state.due_at_ms = 0
    state.first_pending_at_ms = 0
    return digest


def _remember(bounded: list[str], item: str, cap: int) -> None:
    bounded.append(item)
    if len(bounded) > cap:
        del bounded[: len(bounded) - cap]
