"""What of a seller's reply may reach the buyer, per destination kind. Pure.

Text and emoji always. Inline pictures (the ``cid:`` parts the seller kept in the body) go to
the buyer as chat images where the shop's destination allows it (by default Salesforce;
``ShopSettings.inline_images_allowed`` overrides the kind's default). Attachments, videos,
files and remote images never; hyperlinks are reduced to their text by extraction. Whatever
was held back is told to the seller (never the buyer) in one notice that cannot start a loop
(its words: :mod:`shared.notice_texts`).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from reply_parser.extract import InlineImage
from reply_parser.split import split_for_chat
from shared.events import MailNotice, NoticeKind, ReplyPart, ShopSettings
from shared.notice_texts import (
    NoticeText,
    content_withheld_text,
    held_as_automated_text,
    links_removed_text,
    sender_rejected_text,
)
from shared.topics import DAY_MS

# The platform's "Upload Buyer Messages Image" accepts these (docs/tiktok-shop-contract.md).
CHAT_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
# Field names, quotes, index, content type: what one image part costs beside its base64.
_PART_OVERHEAD = 160


@dataclass(frozen=True, slots=True)
class ContentPolicy:
    """The rules for one shop's destination."""

    inline_images: bool
    max_image_bytes: int = 10 * 1024 * 1024
    record_budget_bytes: int = 960 * 1024


def parse_kinds(spec: str) -> frozenset[str]:
    """``"salesforce,zendesk"`` -> the set of destination kinds (config format)."""
    return frozenset(k.strip().lower() for k in spec.split(",") if k.strip())


def policy_for(
    shop: ShopSettings,
    image_kinds: frozenset[str],
    *,
    max_image_bytes: int = 10 * 1024 * 1024,
    record_budget_bytes: int = 960 * 1024,
) -> ContentPolicy:
    """The content policy of *shop*: its override, else its destination kind's default."""
    allowed = shop.inline_images_allowed
    if allowed is None:
        allowed = str(shop.destination_kind).lower() in image_kinds
    return ContentPolicy(bool(allowed), max_image_bytes, record_budget_bytes)


@dataclass(frozen=True, slots=True)
class ReplyContent:
    """The chat parts to deliver and what was withheld from the buyer (human-readable)."""

    parts: tuple[ReplyPart, ...]
    withheld: tuple[str, ...]


def text_record_cost(chunks: list[str]) -> int:
    """Bytes the text parts take in a ``chat.replies`` record (UTF-8 JSON, generous)."""
    return sum(
        len(c.encode("utf-8")) + c.count('"') + c.count("\\") + c.count("\n") + 40 for c in chunks
    )


def build_reply_content(
    chunks: list[str],
    images: tuple[InlineImage, ...],
    withheld: tuple[str, ...],
    policy: ContentPolicy,
    *,
    segments: tuple[str, ...] = (),
) -> ReplyContent:
    """The chat parts, with the allowed pictures where the seller placed them.

    With *segments* (the text before, between and after the images, as extraction found
    them) each delivered picture sits between the text around it; without, the text parts
    come first and the pictures follow in order. A picture is withheld when the destination
    does not allow pictures, its type is not one the chat platform takes, it exceeds the
    platform's size limit, or it would push the record past its budget (one Kafka record per
    reply); the text around a withheld picture is joined as if it had not been there.
    """
    held = list(withheld)
    budget = policy.record_budget_bytes - text_record_cost(chunks)
    delivered: list[InlineImage] = []
    for image in images:
        reason = _image_refusal(image, policy, budget)
        if reason:
            held.append(f"inline picture: {image.filename or image.content_id} ({reason})")
            delivered.append(_WITHHELD)
            continue
        budget -= _image_cost(image)
        delivered.append(image)
    if (
        not segments
        or len(segments) != len(images) + 1
        or all(image is _WITHHELD for image in delivered)
    ):
        parts = [ReplyPart(index=i, text=c) for i, c in enumerate(chunks)]
        for image in delivered:
            if image is not _WITHHELD:
                parts.append(_image_part(len(parts), image))
        return ReplyContent(tuple(parts), tuple(held))
    parts = []
    pending = [segments[0]]
    for image, after in zip(delivered, segments[1:], strict=True):
        if image is not _WITHHELD:
            parts.extend(_text_parts(len(parts), pending))
            parts.append(_image_part(len(parts), image))
            pending = []
        pending.append(after)
    parts.extend(_text_parts(len(parts), pending))
    return ReplyContent(tuple(parts), tuple(held))


# Stands for a picture that is not delivered, in the ordered list of pictures.
_WITHHELD = InlineImage(content_type="", filename=None, content_id="", data=b"")


def _image_refusal(image: InlineImage, policy: ContentPolicy, budget: int) -> str:
    if not policy.inline_images:
        return "not shown on this destination"
    ctype = image.content_type.lower()
    if ctype not in CHAT_IMAGE_TYPES:
        return f"{ctype} is not a chat image type"
    if not image.data:
        return "empty"
    if len(image.data) > policy.max_image_bytes:
        return f"{len(image.data)} bytes, over the chat limit of {policy.max_image_bytes}"
    if _image_cost(image) > budget:
        return f"{len(image.data)} bytes, too large to carry with this reply"
    return ""


def _image_cost(image: InlineImage) -> int:
    return (len(image.data) + 2) // 3 * 4 + _PART_OVERHEAD + len(image.filename or image.content_id)


def _image_part(index: int, image: InlineImage) -> ReplyPart:
    return ReplyPart(
        index=index,
        image_b64=base64.b64encode(image.data).decode(),
        image_content_type=image.content_type.lower(),
        image_filename=image.filename or "",
    )


def _text_parts(first_index: int, pieces: list[str]) -> list[ReplyPart]:
    text = "\n\n".join(p for p in pieces if p.strip())
    chunks = split_for_chat(text) if text.strip() else []
    return [ReplyPart(index=first_index + i, text=c) for i, c in enumerate(chunks)]


def notice_id_for(kind: str, reply_id: str) -> str:
    """Deterministic: a replayed mail yields the same id, and the mailer sends it once."""
    return hashlib.sha256(f"{kind}:{reply_id}".encode()).hexdigest()[:32]


def content_withheld_notice(
    *,
    reply_id: str,
    seller: str,
    seller_message_id: str,
    shop_id: str,
    conversation_id: str,
    withheld: tuple[str, ...],
    now_ms: int,
) -> MailNotice:
    """The one notice telling the seller what the buyer did not receive (RFC 3834 reply)."""
    # Links have their own notice (links_removed_notice), at most once a day.
    return _notice(
        NoticeKind.CONTENT_WITHHELD,
        reply_id,
        content_withheld_text(withheld),
        to_address=seller,
        shop_id=shop_id,
        conversation_id=conversation_id,
        now_ms=now_ms,
        in_reply_to=seller_message_id,
        answers_the_seller=True,
    )


def sender_rejected_notice(
    *,
    reply_id: str,
    shop: ShopSettings,
    sender: str,
    reason: str,
    conversation_id: str,
    now_ms: int,
    sender_accountable: bool,
) -> MailNotice | None:
    """One notice to the shop's own inbox (never to the sender) about a refused reply.

    None when the shop has no destination inbox to tell, and when the sender is not
    accountable: an outsider (not one of the shop's addresses) who did not prove their domain
    (no aligned DKIM or SPF pass). Anyone can write from any address, and strangers' mails
    must not fill, or use up, the shop's notices. A refusal of one of the shop's own
    addresses (forged, or failing authentication) is told: the shop should know.
    """
    if not shop.destination_email or not sender_accountable:
        return None
    return _notice(
        NoticeKind.SENDER_REJECTED,
        reply_id,
        sender_rejected_text(sender=sender, reason=reason),
        to_address=shop.destination_email,
        shop_id=shop.shop_id,
        conversation_id=conversation_id,
        now_ms=now_ms,
    )


def links_removed_notice(
    *,
    seller: str,
    seller_message_id: str,
    shop_id: str,
    conversation_id: str,
    links: tuple[str, ...],
    now_ms: int,
) -> MailNotice:
    """The notice that links were shown as their text only.

    At most one per conversation per UTC day: the id derives from the shop, the conversation
    and the day, so the mailer (which sends each notice id once) drops the day's repeats.
    """
    day = now_ms // DAY_MS
    return _notice(
        NoticeKind.LINKS_REMOVED,
        f"{shop_id}:{conversation_id}:{day}",
        links_removed_text(links),
        to_address=seller,
        shop_id=shop_id,
        conversation_id=conversation_id,
        now_ms=now_ms,
        in_reply_to=seller_message_id,
        answers_the_seller=True,
    )


def _notice(
    kind: NoticeKind,
    id_source: str,
    words: NoticeText,
    *,
    to_address: str,
    shop_id: str,
    conversation_id: str,
    now_ms: int,
    in_reply_to: str = "",
    answers_the_seller: bool = False,
) -> MailNotice:
    """A notice about one inbound mail: an RFC 3834 auto-reply threaded under the seller's
    own mail when it answers it, else auto-generated for the shop's inbox."""
    return MailNotice(
        notice_id=notice_id_for(kind, id_source),
        kind=kind,
        to_address=to_address,
        subject=words.subject,
        text=words.text,
        shop_id=shop_id,
        conversation_id=conversation_id,
        in_reply_to=in_reply_to,
        auto_submitted="auto-replied" if answers_the_seller else "auto-generated",
        created_at_ms=now_ms,
    )


def held_as_automated_notice(
    *,
    reply_id: str,
    shop: ShopSettings,
    sender: str,
    subject: str,
    reason: str,
    conversation_id: str,
    now_ms: int,
) -> MailNotice | None:
    """Tell the shop's own inbox that a mail was held back as automated because of its
    content alone (subject or body wording), so a wrong guess is never silent.

    Sent to the shop's destination inbox, never to the From address (which anyone can
    forge); None when the shop has none. The caller produces it only for the shop's own
    registered senders, and the parser counts it against the sender's notice budget.
    """
    if not shop.destination_email:
        return None
    return _notice(
        NoticeKind.HELD_AS_AUTOMATED,
        reply_id,
        held_as_automated_text(sender=sender, subject=subject, reason=reason),
        to_address=shop.destination_email,
        shop_id=shop.shop_id,
        conversation_id=conversation_id,
        now_ms=now_ms,
    )
