"""The chat-platform interface the bridge is written against, and its error type.

Two halves, because they live in different services:

- :class:`WebhookAdapter` (ingest): verify a pushed webhook against the raw
  bytes, and turn it into platform-neutral :class:`PlatformMessage` values.
- :class:`ChatPlatform` (fan-out, ingest name lookups, the mailer's card lookups): send
  a message, mark a conversation read, look up a conversation's buyer, list recent
  messages, look up the products and orders that cards name.

TikTok Shop implements both (``tiktok_client``/``tiktok_messages``); a generic
signed-webhook platform implements both too (``generic_webhook``), which keeps
the interface honest about not being TikTok-shaped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import httpx
import orjson

from shared.errors import BridgeError
from shared.events import ChatContent, ChatEventKind

BUYER_ROLE = "BUYER"
# The most one chat message may hold, in UTF-16 code units (what the platform counts:
# reply-parser's split.py says why); a longer reply is split into several messages.
CHAT_MESSAGE_LIMIT = 2000
SELLER_ROLES = frozenset({"SHOP", "CUSTOMER_SERVICE"})


class PlatformError(BridgeError):
    """A chat-platform call failed.

    ``retryable``: trying again can help (429, 5xx, network). ``ambiguous``: the
    platform may have applied the request although it answered with an error (a
    5xx or a lost response after a POST), so a retry must first check whether the
    message is already there.
    """

    def __init__(
        self,
        reason: str,
        *,
        status: int = 0,
        code: int = 0,
        retryable: bool = False,
        retry_after_s: float | None = None,
        ambiguous: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.code = code
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        self.ambiguous = ambiguous


def transport_error(exc: httpx.HTTPError, method: str) -> PlatformError:
    """What a failed HTTP exchange with the platform means: a connection never made is safe
    to retry; any other failure after a POST may have reached the platform (ambiguous)."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return PlatformError(f"platform unreachable: {exc.__class__.__name__}", retryable=True)
    return PlatformError(
        f"platform call failed: {exc.__class__.__name__}",
        retryable=True,
        ambiguous=method == "POST",
    )


def retry_after_s(resp: httpx.Response) -> float | None:
    """The response's ``Retry-After`` in seconds (delta form), or None."""
    value = resp.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class PayloadError(BridgeError, ValueError):
    """A platform payload is malformed; ``str(exc)`` names the field.

    ``field`` is the JSON path of the bad value (empty when the whole payload is
    meant), ``reason`` says what was expected, ``code`` is a short fixed word for
    metrics (see :class:`shared.chat_platform.payload_fields.Violation`).
    """

    def __init__(self, reason: str, *, field: str = "", code: str = "malformed") -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason
        self.code = code


def json_object_body(body: bytes) -> dict[str, Any]:
    """A webhook body parsed as a JSON object; :class:`PayloadError` otherwise."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:  # also invalid UTF-8, nesting over 1024, 1e400
        raise PayloadError(f"not JSON: {exc}", field="body", code="not_json") from None
    if not isinstance(payload, dict):
        raise PayloadError("expected a JSON object", field="body", code="wrong_type")
    return payload


class WebhookRejected(BridgeError):
    """A webhook that must be refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ConversationInfo:
    conversation_id: str
    buyer_id: str
    buyer_name: str


@dataclass(frozen=True, slots=True)
class PlatformMessage:
    """A chat message as a platform reports it, before it becomes a ChatEvent."""

    message_id: str
    conversation_id: str
    sender_role: str
    sender_id: str
    sender_name: str
    create_time_s: int
    index: str
    is_visible: bool
    content: ChatContent
    # The platform's own type and JSON content, kept so fan-out can recognise a
    # message it sent itself (see shared.chat_platform.delivery_check).
    raw_type: str = ""
    raw_content: str = ""
    kind_override: str = ""  # e.g. a generic platform's explicit "read" event

    @property
    def event_kind(self) -> str | None:
        if self.kind_override:
            return self.kind_override
        if self.sender_role == BUYER_ROLE:
            return ChatEventKind.BUYER_MESSAGE
        if self.sender_role in SELLER_ROLES:
            return ChatEventKind.SELLER_MESSAGE
        return None  # SYSTEM/ROBOT: the platform's own messages never trigger a digest


@dataclass(frozen=True, slots=True)
class WebhookBatch:
    """What one webhook delivery carried: the shop and zero or more messages."""

    shop_id: str
    messages: tuple[PlatformMessage, ...] = ()


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One reply part in the platform's own terms: a type and its content."""

    msg_type: str
    content_json: str  # the JSON string the platform stores as ``content``


@dataclass(frozen=True, slots=True)
class UploadedImage:
    """A picture stored on the platform, ready to be sent as an IMAGE message."""

    url: str
    width: int = 0
    height: int = 0


@dataclass(frozen=True, slots=True)
class ProductDetails:
    """What a product card shows once looked up (outside text: rendered escaped)."""

    product_id: str
    name: str
    image_url: str = ""
    price: str = ""  # formatted with its currency, e.g. "12.90 USD"
    url: str = ""  # the product's page, when the platform gives one


@dataclass(frozen=True, slots=True)
class OrderDetails:
    """What an order card shows once looked up."""

    order_id: str
    status: str = ""
    item_names: tuple[str, ...] = ()


# Upload Buyer Messages Image: "jpg/gif/webp/png, <= 10MB" (docs/tiktok-shop-contract.md).
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
IMAGE_MAX_BYTES = 10 * 1024 * 1024


def check_image(data: bytes, content_type: str) -> None:
    """Raise :class:`PayloadError` unless the platform accepts this picture. Pure."""
    if content_type.lower() not in IMAGE_TYPES:
        raise PayloadError(
            f"picture type {content_type or 'unknown'!r} not accepted; "
            f"the platform takes {', '.join(sorted(IMAGE_TYPES))}"
        )
    if not data:
        raise PayloadError("picture is empty")
    if len(data) > IMAGE_MAX_BYTES:
        raise PayloadError(f"picture of {len(data)} bytes; the platform allows {IMAGE_MAX_BYTES}")


class WebhookAdapter(Protocol):
    """Receive side: verify and parse pushed events."""

    name: str

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Raise :class:`WebhookRejected` (401/403) unless the delivery is authentic."""
        ...

    def parse(self, body: bytes) -> WebhookBatch:
        """Parse a verified body; raise :class:`PayloadError` when malformed."""
        ...


@runtime_checkable
class ChatPlatform(Protocol):
    """Send side: what the fan-out (and ingest's name lookup) needs from a platform."""

    def outgoing_text(self, text: str) -> OutgoingMessage: ...

    def outgoing_image(self, url: str, width: int = 0, height: int = 0) -> OutgoingMessage: ...

    async def upload_image(
        self, shop_id: str, data: bytes, content_type: str, filename: str = ""
    ) -> UploadedImage:
        """Store a picture on the platform (for an IMAGE message). Raises PlatformError;
        a picture the platform cannot take raises a non-retryable one."""
        ...

    async def send(
        self,
        shop_id: str,
        conversation_id: str,
        message: OutgoingMessage,
        *,
        idempotency_key: str = "",
    ) -> str:
        """Post one message; returns the platform's message id. Raises PlatformError."""
        ...

    async def mark_read(self, shop_id: str, conversation_id: str) -> None: ...

    async def get_conversation(self, shop_id: str, conversation_id: str) -> ConversationInfo: ...

    async def messages_since(
        self, shop_id: str, conversation_id: str, since_s: int
    ) -> list[PlatformMessage]:
        """Messages created at or after ``since_s`` (Unix seconds), oldest first."""
        ...

    async def product_details(
        self, shop_id: str, product_ids: list[str]
    ) -> dict[str, ProductDetails]:
        """The products the platform knows among ``product_ids`` (an id it does not know is
        absent). Raises PlatformError when the lookup failed as a whole."""
        ...

    async def order_details(self, shop_id: str, order_ids: list[str]) -> dict[str, OrderDetails]:
        """As :meth:`product_details`, for orders."""
        ...

    async def aclose(self) -> None: ...
