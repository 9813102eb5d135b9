"""Who is calling the admin API: HMAC-signed bearer tokens. Pure.

Scheme (and why): each activated user gets an API token at activation,
``Authorization: Bearer bat1.<kid>.<payload>.<mac>``. The payload (shop id,
email, role, the user's activation nonce, expiry) is signed with a server key,
so any ingest replica verifies it without a database or a session store, keys
rotate by kid, and the shop and role are known before anything is read. The
signature proves who issued it; a check against the in-memory user directory
(materialized from ``admin.users``) then revokes tokens of removed or
re-invited users and of changed roles at once. Onboarding a shop (creating its
main account) is the platform operator's act and uses a separate operator
token. In production behind the marketplace's seller centre, the platform's
seller session can replace the bearer token: only :func:`authenticate` changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ingest.admin_signing import SignedTokenError, sign, verify
from shared.constant_time import same_secret
from shared.errors import BridgeError
from shared.events import ShopUser, UserStatus
from shared.key_ring import KeyRing

API_TOKEN_KIND = "bat1"
OPERATOR = "operator"


class AuthError(BridgeError):
    """No valid credentials (401) with the reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Principal:
    shop_id: str  # "*" for the operator
    email: str
    role: str  # a UserRole value, or "operator"

    @property
    def is_operator(self) -> bool:
        return self.role == OPERATOR

    @property
    def name(self) -> str:
        return self.email or self.role


def issue_api_token(user: ShopUser, keys: KeyRing, *, now_ms: int, ttl_ms: int) -> str:
    return sign(
        API_TOKEN_KIND,
        {
            "s": user.shop_id,
            "e": user.email,
            "r": user.role,
            "n": user.activation_nonce,
            "iat": now_ms,
            "exp": now_ms + ttl_ms,
        },
        keys,
    )


def authenticate(
    authorization: str | None,
    keys: KeyRing,
    operator_token: str,
    lookup: Callable[[str, str], ShopUser | None],
    now_ms: int,
) -> Principal:
    """The caller behind an ``Authorization`` header, or :class:`AuthError`."""
    if not authorization:
        raise AuthError("missing Authorization header: send 'Bearer <API token>'")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthError("Authorization must be 'Bearer <API token>'")
    if operator_token and same_secret(operator_token, token):
        return Principal("*", "", OPERATOR)
    try:
        claims = verify(API_TOKEN_KIND, token, keys)
    except SignedTokenError as exc:
        raise AuthError(f"API token not valid: {exc}") from None
    return user_principal(claims, lookup, now_ms, what="API token")


def user_principal(
    claims: dict[str, object],
    lookup: Callable[[str, str], ShopUser | None],
    now_ms: int,
    *,
    what: str,
) -> Principal:
    """The user named by verified ``claims`` (an API token's or a console session's):
    expired, or revoked by a removal, a re-invitation or a role change, is
    :class:`AuthError`. The one revocation rule for every way a user signs in."""
    try:
        shop_id, email, role = str(claims["s"]), str(claims["e"]), str(claims["r"])
        nonce, expires = claims["n"], claims["exp"]
    except KeyError as exc:
        raise AuthError(f"{what} not valid: missing claim {exc}") from None
    if not isinstance(expires, int) or now_ms >= expires:
        raise AuthError(f"{what} expired; activate again or ask an administrator")
    user = lookup(shop_id, email)
    if user is None or user.status != UserStatus.ACTIVE or user.activation_nonce != nonce:
        raise AuthError(f"{what} revoked: the user was removed or re-invited")
    if user.role != role:
        raise AuthError(f"{what} revoked: the user's role changed; activate again")
    return Principal(shop_id, email, role)
