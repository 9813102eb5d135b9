"""Which of our digests a bounce is about, and why it bounced (RFC 3464 delivery reports).

A relay that accepted a digest can still fail to deliver it later; the report comes back
to the envelope sender, the conversation's reply address (or the VERP address), so it
reaches the parser. The digest is named by the headers the report returns
(``text/rfc822-headers`` or ``message/rfc822``): our ``X-Bridge-Digest-Id``, or the
``digest-<id>@<domain>`` Message-ID. Reports that return no headers (some MTAs quote
the original in plain text) are searched for those two as text. Pure: message in,
:class:`Bounce` (or ``None`` when it names none of our digests) out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import EmailMessage, Message
from email.parser import HeaderParser

__all__ = ["Bounce", "read_bounce"]

_MAX_SCAN = 200_000  # characters of a plain-text bounce searched for our ids
_SMTP_CODE = re.compile(r"\b([245]\d\d)\b")
_STATUS = re.compile(r"^([245])\.\d{1,3}\.\d{1,3}$")
_QUOTED_DIGEST_HEADER = re.compile(r"^X-Bridge-Digest-Id:[ \t]*(\S+)", re.M | re.I)
_QUOTED_DIGEST_MESSAGE_ID = re.compile(r"<digest-[^<>@\s]+@[^<>\s]+>")


@dataclass(frozen=True, slots=True)
class Bounce:
    digest_id: str
    permanent: bool  # Action: failed (5.x.x), not delayed (4.x.x): the digest is not delivered
    status: str  # RFC 3463 enhanced status, e.g. "5.1.1" ("" when the report gives none)
    smtp_code: int  # from Diagnostic-Code, e.g. 550 (0 when none)
    recipient: str
    diagnostic: str

    @property
    def reason(self) -> str:
        words = [
            self.status,
            self.diagnostic or "no diagnostic",
            f"(recipient {self.recipient})" if self.recipient else "",
        ]
        return " ".join(w for w in words if w)[:500]


def read_bounce(msg: EmailMessage, message_id_domain: str) -> Bounce | None:
    """The bounce this report describes, when it names one of our digests."""
    digest_id = _digest_id(msg, message_id_domain)
    if not digest_id:
        return None
    fields = _first_recipient_fields(msg)
    action = fields.get("action", "").lower()
    words = fields.get("status", "").split()  # "5.1.1 (comment)" or blank
    status = words[0] if words and _STATUS.match(words[0]) else ""
    diagnostic = " ".join(fields.get("diagnostic-code", "").split())
    if ";" in diagnostic:
        diagnostic = diagnostic.split(";", 1)[1].strip()  # drop the "smtp;" type
    code = _SMTP_CODE.search(diagnostic)
    # Without a delivery-status part, a bounce (classified as one) is taken as final.
    permanent = action == "failed" or (not action and not status.startswith("4"))
    recipient = fields.get("final-recipient", fields.get("original-recipient", ""))
    if ";" in recipient:
        recipient = recipient.split(";", 1)[1].strip()
    return Bounce(
        digest_id=digest_id,
        permanent=permanent,
        status=status,
        smtp_code=int(code.group(1)) if code else 0,
        recipient=recipient[:200],
        diagnostic=diagnostic[:300],
    )


def _digest_id(msg: EmailMessage, domain: str) -> str:
    for headers in _returned_headers(msg):
        found = _digest_id_in(headers.get("X-Bridge-Digest-Id"), headers.get("Message-ID"), domain)
        if found:
            return found
    # No returned headers: look for ours in the text of the whole report.
    text = _text_of(msg)
    header = _QUOTED_DIGEST_HEADER.search(text)
    message_id = _QUOTED_DIGEST_MESSAGE_ID.search(text)
    return _digest_id_in(
        header.group(1) if header else None, message_id.group(0) if message_id else None, domain
    )


def _digest_id_in(header: object, message_id: object, domain: str) -> str:
    if header and str(header).strip():
        return str(header).strip()[:200]
    if message_id:
        value = str(message_id).strip().strip("<>")
        left, _, right = value.rpartition("@")
        if right.lower() == domain.lower() and left.startswith("digest-") and len(left) > 7:
            return left[len("digest-") :]
    return ""


def _returned_headers(msg: Message) -> list[Message]:
    found: list[Message] = []
    for part in msg.walk():
        content_type = part.get_content_type()
        if content_type == "text/rfc822-headers":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                found.append(HeaderParser().parsestr(payload.decode("utf-8", "replace")))
        elif content_type == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                found.append(inner[0])
    return found


def _first_recipient_fields(msg: Message) -> dict[str, str]:
    """The first per-recipient block of a message/delivery-status part, lower-cased names."""
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        if not isinstance(blocks, list):
            continue
        # Block 0 is per-message (Reporting-MTA); the rest are per recipient.
        for block in blocks[1:] or blocks:
            if isinstance(block, Message) and (block.get("Action") or block.get("Status")):
                return {k.lower(): str(v) for k, v in block.items()}
    return {}


def _text_of(msg: Message) -> str:
    chunks: list[str] = []
    size = 0
    for part in msg.walk():
        if part.get_content_maintype() != "text":
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            try:
                chunk = payload.decode(part.get_content_charset() or "utf-8", "replace")
            except LookupError:  # a charset Python does not know
                chunk = payload.decode("utf-8", "replace")
            chunks.append(chunk)
            size += len(chunk)
            if size > _MAX_SCAN:
                break
    return "\n".join(chunks)[:_MAX_SCAN]
