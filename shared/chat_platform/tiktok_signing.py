"""TikTok Shop Open API signatures, exactly as the platform documents them.

Followed: Partner Center developer guide "Sign your API request" and
"TikTok Shop webhooks overview" (mirrored in lazykern/ecommerce-api-docs,
data/processed/tiktok/guides/developer-guide/tiktok-shop-api-concepts/
sign-your-api-request.md); see docs/tiktok-shop-contract.md. Both official
test vectors are unit-tested.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from shared.constant_time import same_secret

_EXCLUDED = frozenset({"sign", "access_token"})


def sign_request(
    path: str, query: Mapping[str, str], body: bytes, app_secret: str, *, multipart: bool = False
) -> str:
    """The ``sign`` query parameter for an API request (202309 and later).

    1. all query params except sign/access_token, keys sorted, as ``{key}{value}``;
    2. prefixed with the URL path; 3. the exact body bytes appended unless multipart;
    4. wrapped in app_secret on both ends; 5. HMAC-SHA256 keyed by app_secret, hex.
    """
    params = "".join(f"{k}{query[k]}" for k in sorted(query) if k not in _EXCLUDED)
    base = path.encode() + params.encode()
    if body and not multipart:
        base += body
    secret = app_secret.encode()
    return hmac.new(secret, secret + base + secret, hashlib.sha256).hexdigest()


def sign_webhook(app_key: str, body: bytes, app_secret: str) -> str:
    """The webhook ``Authorization`` header: hex HMAC-SHA256(app_secret, app_key + raw body)."""
    return hmac.new(app_secret.encode(), app_key.encode() + body, hashlib.sha256).hexdigest()


def verify_webhook(app_key: str, body: bytes, app_secret: str, authorization: str | None) -> bool:
    if not authorization:
        return False
    expected = sign_webhook(app_key, body, app_secret)
    return same_secret(expected, authorization.strip().lower())
