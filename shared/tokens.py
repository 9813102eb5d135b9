"""Per-conversation reply-address tokens: HMAC-signed, expiring, verified without a database.

Layout before base32 (lowercase, no padding; local parts are case-folded by
many MTAs, base32 survives that):

    byte 0      version (high nibble) | key id (low nibble): keys rotate without
                invalidating addresses already in sellers' inboxes
    bytes 1-4   expiry, hours since the Unix epoch (big-endian)
    ids         shop id, then conversation id; each a length byte whose high
                bit marks "decimal number" (stored as big-endian integer: the
                platform's ids are long decimals) followed by the bytes
    last 10     HMAC-SHA256(key, everything before), truncated to 80 bits

The whole local part stays within RFC 5321's 64 characters; ids that do not
fit raise :class:`TokenTooLong` at minting time rather than later at RCPT.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from dataclasses import dataclass

from shared.errors import BridgeError
from shared.key_ring import KeyRing, parse_key_ring

VERSION = 1
MAC_BYTES = 10
MAX_LOCAL_PART = 64
_MAX_RAW = MAX_LOCAL_PART * 5 // 8  # 40 bytes encode to 64 base32 chars
_NUMERIC = 0x80


class TokenError(BridgeError, ValueError):
    """A reply token cannot be accepted; ``str(exc)`` is the reason."""


class MalformedToken(TokenError):
    pass


class UnknownKey(TokenError):
    pass


class BadSignature(TokenError):
    pass


class ExpiredToken(TokenError):
    pass


class TokenTooLong(TokenError):
    pass


@dataclass(frozen=True, slots=True)
class ReplyToken:
    shop_id: str
    conversation_id: str
    expires_at_s: int


def _token_key_id(text: str) -> str | None:
    # The id travels in the token's low nibble.
    if text.isascii() and text.isdigit() and int(text) <= 15:
        return str(int(text))
    return None


def parse_keys(spec: str) -> KeyRing:
    """The reply-token key ring (``"kid:secret,kid:secret"``, the first signs)."""
    return parse_key_ring(
        spec, what="token keys", kid_of=_token_key_id, kid_rule="token key ids are 0-15"
    )


def _encode_id(value: str) -> bytes:
    if value.isdigit() and value.isascii() and not (len(value) > 1 and value[0] == "0"):
        number = int(value)
        body = number.to_bytes(max(1, (number.bit_length() + 7) // 8), "big")
        if len(body) > 0x7F:
            raise TokenTooLong("id too long for a reply token")
        return bytes([_NUMERIC | len(body)]) + body
    body = value.encode()
    if len(body) > 0x7F:
        raise TokenTooLong("id too long for a reply token")
    return bytes([len(body)]) + body


def _decode_id(raw: bytes, pos: int) -> tuple[str, int]:
    if pos >= len(raw):
        raise MalformedToken("token is truncated")
    head = raw[pos]
    length = head & 0x7F
    body = raw[pos + 1 : pos + 1 + length]
    if len(body) != length:
        raise MalformedToken("token is truncated")
    if head & _NUMERIC:
        return str(int.from_bytes(body, "big")), pos + 1 + length
    try:
        return body.decode(), pos + 1 + length
    except UnicodeDecodeError:
        raise MalformedToken("token id is not text") from None


def mint_token(
    shop_id: str, conversation_id: str, keys: KeyRing, *, now_s: float, ttl_s: float
) -> str:
    """Create the local part of a conversation's reply address."""
    kid_text, key = keys.signing
    kid = int(kid_text)
    expires_h = int((now_s + ttl_s) // 3600) + 1
    payload = (
        bytes([(VERSION << 4) | kid])
        + struct.pack(">I", expires_h)
        + _encode_id(shop_id)
        + _encode_id(conversation_id)
    )
    raw = payload + hmac.new(key, payload, hashlib.sha256).digest()[:MAC_BYTES]
    if len(raw) > _MAX_RAW:
        raise TokenTooLong(f"ids need {len(raw)} bytes, a reply token holds {_MAX_RAW}")
    return base64.b32encode(raw).decode().rstrip("=").lower()


# The longest conversation ids a shop must fit beside: the platform's (TikTok's are
# 18-19 digits) and the admin API's simulation ids ("sim-" + 8 hex digits).
LONGEST_CONVERSATION_IDS = ("9" * 20, "sim-" + "f" * 8)


def shop_id_fits_reply_tokens(shop_id: str) -> bool:
    """Whether every conversation of this shop can get a reply address (checked at onboarding)."""
    return all(ids_fit_reply_token(shop_id, c) for c in LONGEST_CONVERSATION_IDS)


def ids_fit_reply_token(shop_id: str, conversation_id: str) -> bool:
    """Whether this conversation can get a reply address (checked when a message arrives)."""
    try:
        size = 1 + 4 + len(_encode_id(shop_id)) + len(_encode_id(conversation_id)) + MAC_BYTES
    except TokenTooLong:
        return False
    return size <= _MAX_RAW


def verify_token(token: str, keys: KeyRing, *, now_s: float) -> ReplyToken:
    """Check a token's signature and expiry; raise a :class:`TokenError` with the reason."""
    if not token or len(token) > MAX_LOCAL_PART:
        raise MalformedToken("not a reply token (length)")
    try:
        raw = base64.b32decode(token.upper() + "=" * (-len(token) % 8))
    except (ValueError, binascii.Error):
        raise MalformedToken("not a reply token (encoding)") from None
    if len(raw) < 1 + 4 + 2 + MAC_BYTES:
        raise MalformedToken("not a reply token (too short)")
    version, kid = raw[0] >> 4, raw[0] & 0x0F
    if version != VERSION:
        raise MalformedToken(f"unknown token version {version}")
    key = keys.secret(str(kid))
    if key is None:
        raise UnknownKey(f"token signed with unknown or retired key {kid}")
    payload, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
    if not hmac.compare_digest(hmac.new(key, payload, hashlib.sha256).digest()[:MAC_BYTES], mac):
        raise BadSignature("reply address signature does not match (forged or altered)")
    (expires_h,) = struct.unpack(">I", payload[1:5])
    shop_id, pos = _decode_id(payload, 5)
    conversation_id, pos = _decode_id(payload, pos)
    if pos != len(payload):
        raise MalformedToken("token has trailing bytes")
    expires_s = expires_h * 3600
    if now_s > expires_s:
        raise ExpiredToken("reply address has expired; answer from the chat tool or a newer email")
    return ReplyToken(shop_id, conversation_id, expires_s)


# Reply addresses are ``<token>@chat-seller-<region>.<base>``: only this module spells that.
_REPLY_DOMAIN_PREFIX = "chat-seller-"


def reply_domain_prefix(region: str) -> str:
    """The first label of a region's reply domain (``chat-seller-<region>``)."""
    return f"{_REPLY_DOMAIN_PREFIX}{region.lower()}"


def reply_domain(region: str, base: str) -> str:
    return f"{reply_domain_prefix(region)}.{base}"


def is_reply_domain(domain: str, base: str) -> bool:
    """Whether ``domain`` is one of the bridge's reply domains (any region under ``base``)."""
    domain = domain.lower().rstrip(".")
    return domain.startswith(_REPLY_DOMAIN_PREFIX) and domain.endswith("." + base.lower())


def reply_address(token: str, region: str, base: str) -> str:
    return f"{token}@{reply_domain(region, base)}"


def split_reply_address(address: str, base: str) -> tuple[str, str]:
    """Return (token, region) of a reply address, or raise :class:`MalformedToken`."""
    local, at, domain = address.strip().strip("<>").rpartition("@")
    if not at or not local:
        raise MalformedToken("not an email address")
    domain = domain.lower().rstrip(".")
    if not is_reply_domain(domain, base):
        raise MalformedToken(f"{domain} is not a reply domain of this bridge")
    region = domain[len(_REPLY_DOMAIN_PREFIX) : -len(base) - 1]
    if not region or "." in region:
        raise MalformedToken(f"{domain} is not a reply domain of this bridge")
    return local.lower(), region
