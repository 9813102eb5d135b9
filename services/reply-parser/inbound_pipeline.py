"""One inbound mail -> a decision: deliver these chat parts, or record why not. Pure.

Order matters: parse, then loops and automated mail (classification before
anything else: an out-of-office must never reach a buyer), then sender
authorization, then extraction and the split.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses

from shared.events import ChatReply, InboundEnvelope, ReplyClass, ReplyPart, ShopSettings
from reply_parser.classify import classify_mail
from reply_parser.extract import extract_new_text
from reply_parser.split import split_for_chat


@dataclass(frozen=True, slots=True)
class InboundDecision:
    classification: str
    reason: str
    reply: ChatReply | None = None
    text: str = ""


@dataclass(frozen=True, slots=True)
class OwnIdentity:
    """How to recognise our own mail coming back (loops)."""

    message_id_domain: str
    reply_domain_base: str


def parse_mail(raw: bytes) -> EmailMessage:
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    return msg


def reply_id_for(msg: EmailMessage, raw: bytes) -> str:
    """Stable id: the Message-ID when there is one, else the content hash."""
    message_id = str(msg.get("Message-ID", "") or "").strip()
    basis = message_id.encode() if message_id else raw
    return hashlib.sha256(basis).hexdigest()[:32]


def sender_address(msg: EmailMessage) -> str:
    try:
        pairs = getaddresses([str(v) for v in msg.get_all("From", [])])
    except Exception:  # malformed header: treat as no sender
        return ""
    return pairs[0][1].strip().lower() if pairs else ""


def detect_loop(msg: EmailMessage, own: OwnIdentity) -> str | None:
    """A reason if this mail is our own digest (or a notice of ours) coming back."""
    message_id = str(msg.get("Message-ID", "") or "").lower()
    if message_id.rstrip(">").endswith("@" + own.message_id_domain.lower()):
        return "our own digest came back (Message-ID)"
    for value in msg.get_all("X-Loop", []) or []:
        if own.message_id_domain.lower() in str(value).lower():
            return "X-Loop names this bridge"
    if msg.get("X-Bridge-Digest-Id"):
        return "our own digest came back (X-Bridge-Digest-Id)"
    sender = sender_address(msg)
    if sender.endswith("." + own.reply_domain_base.lower()) and "@chat-seller-" in sender:
        return "sent from one of our reply addresses"
    return None


def authorized_senders(shop: ShopSettings) -> set[str]:
    allowed = {a.strip().lower() for a in shop.authorized_senders if a.strip()}
    if shop.destination_email:
        allowed.add(shop.destination_email.strip().lower())
    return allowed


def decide(raw: bytes, env: InboundEnvelope, shop: ShopSettings, own: OwnIdentity, *,
           chat_limit: int = 2000) -> InboundDecision:
    """Classify, authorize and extract one inbound mail."""
    msg = parse_mail(raw)
    loop = detect_loop(msg, own)
    if loop:
        return InboundDecision(ReplyClass.LOOP, loop)
    verdict = classify_mail(msg)
    if verdict.cls != ReplyClass.REPLY:
        return InboundDecision(verdict.cls, verdict.reason)
    sender = sender_address(msg)
    if not sender:
        return InboundDecision(ReplyClass.REJECTED, "no From address")
    if sender not in authorized_senders(shop):
        return InboundDecision(
            ReplyClass.REJECTED,
            f"sender {sender} is not a registered, activated user of shop {shop.shop_id}")
    extraction = extract_new_text(msg)
    chunks = split_for_chat(extraction.text, chat_limit) if extraction.text.strip() else []
    if not chunks:
        return InboundDecision(ReplyClass.REJECTED, "no new text found in the reply")
    reply = ChatReply(
        reply_id=reply_id_for(msg, raw), shop_id=env.shop_id, conversation_id=env.conversation_id,
        parts=tuple(ReplyPart(index=i, text=c) for i, c in enumerate(chunks)),
        mail_id=env.mail_id, sender=sender, received_at_ms=env.received_at_ms,
    )
    return InboundDecision(ReplyClass.REPLY, "new text extracted", reply, extraction.text)
