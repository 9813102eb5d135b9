"""HMAC-signed, self-contained tokens for the admin API: API bearer tokens and activation links.

Format: ``<kind>.<kid>.<payload>.<signature>`` where payload is base64url(JSON)
and signature is base64url(HMAC-SHA256(key[kid], kind.kid.payload)). The kind
is inside the signed text, so an activation link can never be replayed as an API
token or the other way round. Keys rotate like reply-address tokens: the first
key signs, every listed key verifies. Pure: the caller passes the clock.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any

import orjson

from shared.constant_time import same_secret
from shared.errors import BridgeError
from shared.key_ring import KeyRing, parse_key_ring


class SignedTokenError(BridgeError, ValueError):
    """A token is malformed, of another kind, or its signature does not verify."""


def _admin_key_id(text: str) -> str | None:
    return text if text and "." not in text else None  # "." separates the token's parts


def parse_signing_keys(spec: str) -> KeyRing:
    """The admin token key ring (``"kid:secret,kid:secret"``, the first signs)."""
    return parse_key_ring(
        spec, what="admin token keys", kid_of=_admin_key_id, kid_rule="a key id without '.'"
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, signed: str) -> str:
    return _b64(hmac.new(secret, signed.encode(), hashlib.sha256).digest())


def sign(kind: str, payload: dict[str, Any], keys: KeyRing) -> str:
    """A token of ``kind`` carrying ``payload``, signed with the first key."""
    kid, secret = keys.signing
    signed = f"{kind}.{kid}.{_b64(orjson.dumps(payload))}"
    return f"{signed}.{_mac(secret, signed)}"


def verify(kind: str, token: str, keys: KeyRing) -> dict[str, Any]:
    """The payload of a token of ``kind`` whose signature verifies.

    Raises :class:`SignedTokenError` otherwise."""
    parts = token.strip().split(".")
    if len(parts) != 4:
        raise SignedTokenError("malformed token")
    got_kind, kid, body, mac = parts
    if got_kind != kind:
        raise SignedTokenError(f"not a {kind} token")
    secret = keys.secret(kid)
    if secret is None:
        raise SignedTokenError("token signed with an unknown key")
    if not same_secret(_mac(secret, f"{got_kind}.{kid}.{body}"), mac):
        raise SignedTokenError("token signature does not verify")
    try:
        payload = orjson.loads(_unb64(body))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise SignedTokenError("token payload is not JSON") from None
    if not isinstance(payload, dict):
        raise SignedTokenError("token payload is not an object")
    return payload
