"""Every event that crosses a Kafka topic, declared once.

Events are frozen dataclasses: orjson serialises them natively (fast, no
intermediate dict), and :func:`shared.codec.decode` rebuilds them with type
checks. Each event carries ``v`` (schema version) so a consumer can refuse a
record it does not understand instead of misreading it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

SCHEMA_VERSION = 1
# The last millisecond a digest can print (9999-12-31T23:59:59.999Z). A ChatEvent's
# arrival time must be in 0..this: the consolidator adds windows to it and keeps the
# deadline in a signed 64-bit header (shared.codec checks nothing beyond JSON types).
EVENT_TIME_MAX_MS = 253_402_300_799_999


class ContentKind(StrEnum):
    """What a chat message holds, in the bridge's own vocabulary (platform-neutral)."""

    TEXT = "text"
    EMOJI = "emoji"
    IMAGE = "image"
    PRODUCT_CARD = "product_card"
    ORDER_CARD = "order_card"
    RETURN_REFUND_CARD = "return_refund_card"  # a return or refund request about an order
    LOGISTICS_CARD = "logistics_card"  # a question about an order's shipment
    COUPON_CARD = "coupon_card"
    EMOTICON = "emoticon"  # the platform's own emoticon: emoji and/or picture
    VIDEO = "video"
    STICKER = "sticker"
    NOTICE = "notice"  # buyer-side system notice
    OTHER = "other"  # unknown platform type, kept with a fallback description


class ChatEventKind(StrEnum):
    BUYER_MESSAGE = "buyer_message"
    SELLER_MESSAGE = "seller_message"  # seller answered in the chat tool
    READ = "read"  # seller opened the conversation in the chat tool
    EMAIL_REPLY = "email_reply"  # seller answered by email (published by fan-out)
    TICK = "tick"  # consolidator's own clock, fed through the stream


class DestinationKind(StrEnum):
    MAILBOX = "mailbox"
    SALESFORCE = "salesforce"
    ZENDESK = "zendesk"
    GORGIAS = "gorgias"
    OTHER_HELPDESK = "other_helpdesk"

    @property
    def is_helpdesk(self) -> bool:
        return self is not DestinationKind.MAILBOX


@dataclass(frozen=True, slots=True)
class ChatContent:
    """One chat message's content. Only the fields its kind needs are set."""

    kind: str = ContentKind.TEXT
    text: str = ""
    url: str = ""  # picture / video / sticker URL
    thumbnail_url: str = ""  # picture thumbnail, video poster, product image
    title: str = ""  # product name; an emoticon's name
    price: str = ""
    order_id: str = ""
    status: str = ""  # order status
    platform_type: str = ""  # the platform's own type name, kept for unknown kinds
    # Card ids (added with defaults: records written before them still decode).
    product_id: str = ""
    sku_id: str = ""  # return/refund card: the item concerned
    package_id: str = ""  # logistics card: the parcel concerned
    coupon_id: str = ""
    item_names: tuple[str, ...] = ()  # order cards: the order's items, when looked up


@dataclass(frozen=True, slots=True)
class ChatEvent:
    """Something that happened in a conversation, on ``chat.events``.

    ``sent_at_ms`` is the platform's own message time; ordering inside a digest
    uses it (then ``message_id``), never the arrival order.
    """

    kind: str
    shop_id: str
    conversation_id: str
    message_id: str = ""
    sent_at_ms: int = 0
    seq: int = 0  # platform's per-conversation index (time-related), tie-breaker for order
    buyer_id: str = ""
    buyer_name: str = ""
    content: ChatContent | None = None
    received_at_ms: int = 0
    partition_hint: int = -1  # ticks only: the partition the tick was aimed at
    v: int = SCHEMA_VERSION

    @property
    def conversation_key(self) -> str:
        return conversation_key(self.shop_id, self.conversation_id)

    @property
    def arrived_at_ms(self) -> int:
        """When the bridge got it (the debounce counts from here); the platform's time for
        producers that did not say."""
        return self.received_at_ms or self.sent_at_ms


# How an inbound reply's sender must be authenticated (the reply-parser's mail_auth holds the
# decision table): "aligned_pass" a DKIM signature or SPF pass of the author's own domain;
# "dmarc_pass" the domain's DMARC record passes; "dmarc_fail" refuse any DMARC fail;
# "dmarc_reject" refuse only a DMARC fail whose record says p=reject; "off" no check.
MailAuthPolicy = Literal["aligned_pass", "dmarc_pass", "dmarc_fail", "dmarc_reject", "off"]


@dataclass(frozen=True, slots=True)
class ShopSettings:
    """A shop's notification settings, keyed by shop id on the compacted ``shop.settings``."""

    shop_id: str
    alerts_enabled: bool = True
    destination_email: str = ""
    destination_kind: str = DestinationKind.MAILBOX
    region: str = "us"
    shop_name: str = ""
    window_override_s: int | None = None
    inline_images_allowed: bool | None = None  # None: the destination kind's default
    authorized_senders: tuple[str, ...] = ()
    # Inbound mail authentication policy; "" = the operator's default for the destination
    # kind (ReplyParserSettings.inbound_auth_policy / inbound_auth_policy_helpdesk).
    mail_auth_policy: MailAuthPolicy | Literal[""] = ""
    # IANA time zone digests show message times in; "" = the region's (shared/region_time.py).
    time_zone: str = ""
    updated_at_ms: int = 0
    updated_by: str = ""
    v: int = SCHEMA_VERSION


class UserRole(StrEnum):
    """A shop user's role; managers (main account, administrators) may change settings."""

    MAIN_ACCOUNT = "main_account"
    ADMINISTRATOR = "administrator"
    CS_AGENT = "cs_agent"


class UserStatus(StrEnum):
    PENDING = "pending"  # invited; the activation link has not been used yet
    ACTIVE = "active"


@dataclass(frozen=True, slots=True)
class ShopUser:
    """A shop's user, keyed ``shop_id:email`` on the compacted ``admin.users`` (tombstone: removed).

    ``activation_nonce`` names the current activation link (a resend replaces it);
    API tokens carry it too, so removing or re-inviting a user revokes old tokens.
    """

    shop_id: str
    email: str
    role: str
    status: str = UserStatus.PENDING
    activation_nonce: str = ""
    activation_expires_at_ms: int = 0
    invited_at_ms: int = 0
    invited_by: str = ""
    activated_at_ms: int = 0
    updated_at_ms: int = 0
    v: int = SCHEMA_VERSION


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One admin change, on ``admin.audit``: who did what, when, the state before and after.

    ``before``/``after`` are JSON documents (the record as it was and as it became;
    ``"null"`` when there was none), so one event type covers settings and users.
    """

    audit_id: str
    shop_id: str
    actor: str
    action: str
    target: str
    before: str
    after: str
    at_ms: int
    v: int = SCHEMA_VERSION


@dataclass(frozen=True, slots=True)
class DigestMessage:
    message_id: str
    sent_at_ms: int
    content: ChatContent
    seq: int = 0


@dataclass(frozen=True, slots=True)
class Digest:
    """One email's worth of unread buyer messages, on ``mail.digests``.

    ``digest_id`` is derived from the message ids it covers, so a replayed
    decision produces the same id and the mailer drops the duplicate.
    ``previous_digest_ids`` lets the mailer thread this email under earlier ones
    without keeping state of its own.
    """

    digest_id: str
    shop_id: str
    conversation_id: str
    buyer_id: str
    buyer_name: str
    messages: tuple[DigestMessage, ...]
    previous_digest_ids: tuple[str, ...] = ()
    shop_name: str = ""
    region: str = "us"
    destination_email: str = ""
    destination_kind: str = DestinationKind.MAILBOX
    due_at_ms: int = 0
    created_at_ms: int = 0
    # IANA zone for message times, resolved by the consolidator from the shop's settings;
    # "" (records written before it) = the region's zone.
    time_zone: str = ""
    v: int = SCHEMA_VERSION


class MailStatus(StrEnum):
    SENT = "sent"
    DUPLICATE = "duplicate"  # already sent earlier; nothing new went out
    FAILED = "failed"  # permanent failure, dead-lettered


@dataclass(frozen=True, slots=True)
class MailOutcome:
    """What happened to a digest, on ``mail.outcomes`` (compacted, keyed by digest id)."""

    digest_id: str
    shop_id: str
    conversation_id: str
    status: str
    message_id_header: str = ""
    smtp_code: int = 0
    reason: str = ""
    attempts: int = 0
    at_ms: int = 0
    v: int = SCHEMA_VERSION


class NoticeKind(StrEnum):
    ACTIVATION = "activation"
    CONTENT_WITHHELD = "content_withheld"
    DELIVERY_FAILED = "delivery_failed"
    SENDER_REJECTED = "sender_rejected"
    SIMULATION = "simulation"
    # Reply parser: links shown as text (once per conversation per day), and a mail held
    # back as automated on its wording alone.
    LINKS_REMOVED = "links_removed"
    HELD_AS_AUTOMATED = "held_as_automated"
    # Seller console: a link that signs an activated user in again (asked for by email).
    SIGN_IN = "sign_in"


@dataclass(frozen=True, slots=True)
class MailNotice:
    """A system email to a seller or user (not a digest), on ``mail.notices``.

    ``notice_id`` is the idempotency key: the mailer sends each id once.
    ``auto_submitted`` is ``auto-replied`` for notices answering a seller's mail
    (RFC 3834), so the seller's auto-responder never answers it back.
    """

    notice_id: str
    kind: str
    to_address: str
    subject: str
    text: str
    html: str = ""
    shop_id: str = ""
    conversation_id: str = ""
    in_reply_to: str = ""  # Message-ID of the mail this notice is about, for threading
    auto_submitted: str = "auto-generated"
    created_at_ms: int = 0
    v: int = SCHEMA_VERSION


@dataclass(frozen=True, slots=True)
class InboundEnvelope:
    """SMTP envelope of a received mail; travels in a Kafka header beside the raw bytes.

    One record per conversation the mail answers: several reply addresses of one
    conversation are one record, and the front caps the conversations of one mail (452
    beyond). ``rcpt_to`` is the first of this conversation's addresses, ``rcpt_tos`` all of
    them (added with a default, so records written before it and consumers that ignore it
    stay compatible).
    """

    mail_id: str
    shop_id: str
    conversation_id: str
    mail_from: str
    rcpt_to: str
    received_at_ms: int
    peer: str = ""
    rcpt_tos: tuple[str, ...] = ()
    v: int = SCHEMA_VERSION


@dataclass(frozen=True, slots=True)
class ParseAttempt:
    """The parser is about to parse one ``mail.inbound`` record, on ``mail.inbound.attempts``.

    Written before the parse of records ``offset`` to ``last_offset``, keyed
    ``group:topic:partition`` (compacted: the last attempt per partition). A restarted
    parser that finds the records it resumes at marked here knows an earlier process died
    on one of them; marked one by one, it counts the deaths per mail and after
    ``attempts`` of them dead-letters that mail instead of parsing it again.
    """

    group: str
    topic: str
    partition: int
    offset: int
    last_offset: int
    attempts: int
    at_ms: int = 0
    v: int = SCHEMA_VERSION


class ReplyClass(StrEnum):
    REPLY = "reply"
    AUTO_REPLY = "auto_reply"
    BOUNCE = "bounce"
    LOOP = "loop"
    REJECTED = "rejected"
    # Sender authentication met DNS trouble: not accepted now, checked again later.
    DEFERRED = "deferred"


@dataclass(frozen=True, slots=True)
class ReplyPart:
    """One chat message of a reply: text, or a picture.

    A picture the seller pasted inline travels here as bytes (``image_b64``, standard
    base64) because only the fan-out may call the platform's image upload; it uploads them
    and sends an IMAGE message with the returned url. ``image_url`` is for pictures that
    already have a platform url.
    """

    index: int
    text: str = ""
    image_url: str = ""
    image_b64: str = ""  # the picture's bytes, base64; the record stays within 1 MB
    image_content_type: str = ""  # image/jpeg, image/png, image/gif or image/webp
    image_filename: str = ""


@dataclass(frozen=True, slots=True)
class ChatReply:
    """A seller's email reply, ready for chat, on ``chat.replies``.

    ``reply_id`` comes from the shop, the conversation and the mail's Message-ID (or its
    content hash): the same mail delivered twice to one conversation yields the same id and
    the same part keys, and one mail sent to two conversations is two replies.
    """

    reply_id: str
    shop_id: str
    conversation_id: str
    parts: tuple[ReplyPart, ...]
    mail_id: str = ""
    sender: str = ""
    received_at_ms: int = 0
    v: int = SCHEMA_VERSION

    def part_key(self, index: int) -> str:
        """Idempotency key of one part, stable across replays."""
        return f"{self.reply_id}:{index}"


@dataclass(frozen=True, slots=True)
class InboundResult:
    """How the parser classified one inbound mail, on ``mail.inbound.results``."""

    mail_id: str
    shop_id: str
    conversation_id: str
    classification: ReplyClass
    reason: str
    reply_id: str = ""
    parts: int = 0
    at_ms: int = 0
    # A bounce of one of our digests: which digest, and whether it is final (a delivery
    # report with Action: failed) rather than a delay warning.
    digest_id: str = ""
    bounce_final: bool = False
    # Sender authentication as the parser saw it (DKIM, SPF, DMARC, author alignment) and
    # what the shop's policy made of it ("accept", "refuse", "defer"), for the seller's
    # "simulate a conversation" check; "" when it was not reached.
    auth: str = ""
    auth_outcome: str = ""
    v: int = SCHEMA_VERSION


class DeliveryStatus(StrEnum):
    DELIVERED = "delivered"
    ALREADY_DELIVERED = "already_delivered"
    FAILED = "failed"
    # Fan-out is about to post a reply's parts (index -1, keyed ``reply_id:attempt``):
    # on replay it means "check the platform before posting again".
    ATTEMPTING = "attempting"


@dataclass(frozen=True, slots=True)
class PartDelivery:
    """One reply part's fate on the chat platform, on ``chat.deliveries``."""

    reply_id: str
    shop_id: str
    conversation_id: str
    index: int
    status: str
    platform_message_id: str = ""
    reason: str = ""
    attempts: int = 0
    at_ms: int = 0
    v: int = SCHEMA_VERSION
    # On an ATTEMPTING marker: part index (as a string) -> the platform url its inline
    # picture was uploaded to, so a replay checks for (and posts) the same url instead of
    # uploading again and no longer recognising the message already sent.
    image_urls: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record a service could not handle, with the reason, on ``bridge.deadletter``."""

    service: str
    source_topic: str
    reason: str
    key: str = ""
    partition: int = -1
    offset: int = -1
    # The record's size, never its content (buyer text, seller addresses): an operator
    # re-reads the record from (source_topic, partition, offset) while its retention lasts.
    payload_bytes: int = 0
    at_ms: int = 0
    extra: dict[str, str] = field(default_factory=dict)
    v: int = SCHEMA_VERSION


def conversation_key(shop_id: str, conversation_id: str) -> str:
    """The Kafka key for everything about one conversation (keeps it on one partition)."""
    return f"{shop_id}:{conversation_id}"
