"""What of a seller's reply may reach the buyer, per destination kind. Pure.

Text and emoji always. Inline pictures (the ``cid:`` parts the seller kept in the body) go to
the buyer as chat images where the shop's destination allows it (by default Salesforce;
``ShopSettings.inline_images_allowed`` overrides the kind's default). Attachments, videos,
files and remote images never; hyperlinks are reduced to their text by extraction. Whatever
was held back is told to the seller (never the buyer) in one notice that cannot start a loop.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from reply_parser.extract import InlineImage
from shared.events import MailNotice, NoticeKind, ReplyPart, ShopSettings

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


def policy_for(shop: ShopSettings, image_kinds: frozenset[str], *,
               max_image_bytes: int = 10 * 1024 * 1024,
               record_budget_bytes: int = 960 * 1024) -> ContentPolicy:
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
    return sum(len(c.encode("utf-8")) + c.count('"') + c.count("\\") + c.count("\n") + 40
               for c in chunks)


def build_reply_content(chunks: list[str], images: tuple[InlineImage, ...],
                        withheld: tuple[str, ...], policy: ContentPolicy) -> ReplyContent:
    """Text parts in order, then the allowed pictures in the order the seller placed them.

    A picture is withheld when the destination does not allow pictures, its type is not one
    the chat platform takes, it exceeds the platform's size limit, or it would push the
    record past its budget (one Kafka record per reply).
    """
    parts = [ReplyPart(index=i, text=c) for i, c in enumerate(chunks)]
    held = list(withheld)
    budget = policy.record_budget_bytes - text_record_cost(chunks)
    for image in images:
        name = image.filename or image.content_id
        if not policy.inline_images:
            held.append(f"inline picture: {name} (not shown on this destination)")
            continue
        ctype = image.content_type.lower()
        if ctype not in CHAT_IMAGE_TYPES:
            held.append(f"inline picture: {name} ({ctype} is not a chat image type)")
            continue
        if not image.data:
            held.append(f"inline picture: {name} (empty)")
            continue
        if len(image.data) > policy.max_image_bytes:
            held.append(f"inline picture: {name} ({len(image.data)} bytes, over the chat "
                        f"limit of {policy.max_image_bytes})")
            continue
        cost = (len(image.data) + 2) // 3 * 4 + _PART_OVERHEAD + len(name)
        if cost > budget:
            held.append(f"inline picture: {name} ({len(image.data)} bytes, too large to carry "
                        f"with this reply)")
            continue
        budget -= cost
        parts.append(ReplyPart(index=len(parts), image_b64=base64.b64encode(image.data).decode(),
                               image_content_type=ctype, image_filename=image.filename or ""))
    return ReplyContent(tuple(parts), tuple(held))


def notice_id_for(kind: str, reply_id: str) -> str:
    """Deterministic: a replayed mail yields the same id, and the mailer sends it once."""
    return hashlib.sha256(f"{kind}:{reply_id}".encode()).hexdigest()[:32]


def content_withheld_notice(*, reply_id: str, seller: str, seller_message_id: str,
                            shop_id: str, conversation_id: str, withheld: tuple[str, ...],
                            now_ms: int) -> MailNotice:
    """The one notice telling the seller what the buyer did not receive (RFC 3834 reply)."""
    listed = "\n".join(f"- {item}" for item in withheld[:50])
    more = f"\n- … and {len(withheld) - 50} more" if len(withheld) > 50 else ""
    return MailNotice(
        notice_id=notice_id_for(NoticeKind.CONTENT_WITHHELD, reply_id),
        kind=NoticeKind.CONTENT_WITHHELD, to_address=seller,
        subject="Part of your reply was not shown to the customer",
        text=("Your reply was delivered to the customer in chat, but chat shows only text, "
              "emoji and (where your destination allows) pictures placed in the message. "
              "These were not shown:\n\n" f"{listed}{more}\n\n"
              "Links are shown as their text only. To share a file or video, use the chat tool."),
        shop_id=shop_id, conversation_id=conversation_id, in_reply_to=seller_message_id,
        auto_submitted="auto-replied", created_at_ms=now_ms,
    )


def sender_rejected_notice(*, reply_id: str, shop: ShopSettings, sender: str, reason: str,
                           conversation_id: str, now_ms: int) -> MailNotice | None:
    """One notice to the shop's own inbox (never to the sender) about a refused reply.

    None when the shop has no destination inbox to tell.
    """
    if not shop.destination_email:
        return None
    return MailNotice(
        notice_id=notice_id_for(NoticeKind.SENDER_REJECTED, reply_id),
        kind=NoticeKind.SENDER_REJECTED, to_address=shop.destination_email,
        subject="A reply to a customer was refused",
        text=(f"An email reply to a customer conversation was refused and not delivered.\n\n"
              f"Sender: {sender or '(none)'}\nReason: {reason}\n\n"
              "Only users registered and activated for the shop may answer by email. If this "
              "was one of your team, add their address as a user of the shop."),
        shop_id=shop.shop_id, conversation_id=conversation_id, auto_submitted="auto-generated",
        created_at_ms=now_ms,
    )
