"""The console's browser session and CSRF token: signed like the API tokens. Pure.

A session is a token of kind ``cs1`` signed by :mod:`ingest.admin_signing` (one signing
rule, the same key ring, rotation by kid), carried in an HTTP-only, ``SameSite=Lax``
cookie. For a shop user it holds the same claims as an API token (shop, email, role,
activation nonce, expiry), so :func:`ingest.admin_auth.user_principal` revokes it the same
way (removal, re-invitation, role change). For the operator it holds a digest of the
operator token, so changing that token ends every operator session. Each sign-in gets a
fresh random session id (no fixation); the CSRF token is an HMAC of that id under the
key that signed the session, checked on every form post.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from ingest.admin_auth import OPERATOR, AuthError, Principal, user_principal
from ingest.admin_signing import SignedTokenError, sign, verify
from shared.constant_time import same_secret
from shared.events import ShopUser
from shared.key_ring import KeyRing

SESSION_KIND = "cs1"
SIGN_IN_LINK_KIND = "sil1"
COOKIE_NAME = "bridge_console"
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True, slots=True)
class Session:
    """A verified session: who, its id (for the CSRF token) and the key id that signed it."""

    principal: Principal
    session_id: str
    kid: str
    expires_at_ms: int


def _operator_digest(operator_token: str) -> str:
    return hashlib.sha256(b"console-operator." + operator_token.encode()).hexdigest()[:32]


def issue_user_session(user: ShopUser, keys: KeyRing, *, now_ms: int, ttl_ms: int) -> str:
    """A session for an activated shop user, with a new session id."""
    return sign(
        SESSION_KIND,
        {
            "s": user.shop_id,
            "e": user.email,
            "r": user.role,
            "n": user.activation_nonce,
            "sid": secrets.token_urlsafe(16),
            "iat": now_ms,
            "exp": now_ms + ttl_ms,
        },
        keys,
    )


def issue_operator_session(operator_token: str, keys: KeyRing, *, now_ms: int, ttl_ms: int) -> str:
    """A session for the platform operator, valid while the operator token stays the same."""
    return sign(
        SESSION_KIND,
        {
            "op": _operator_digest(operator_token),
            "sid": secrets.token_urlsafe(16),
            "iat": now_ms,
            "exp": now_ms + ttl_ms,
        },
        keys,
    )


def verify_session(
    token: str,
    keys: KeyRing,
    operator_token: str,
    lookup: Callable[[str, str], ShopUser | None],
    now_ms: int,
) -> Session:
    """The session a cookie holds, or :class:`AuthError` with the reason."""
    try:
        claims = verify(SESSION_KIND, token, keys)
    except SignedTokenError as exc:
        raise AuthError(f"session not valid: {exc}") from None
    sid, expires = claims.get("sid"), claims.get("exp")
    if not isinstance(sid, str) or not sid or not isinstance(expires, int):
        raise AuthError("session not valid: missing claims")
    kid = token.split(".")[1]
    if "op" in claims:
        if now_ms >= expires:
            raise AuthError("session expired; sign in again")
        if not operator_token or not same_secret(
            str(claims["op"]), _operator_digest(operator_token)
        ):
            raise AuthError("session revoked: the operator token changed; sign in again")
        return Session(Principal("*", "", OPERATOR), sid, kid, expires)
    principal = user_principal(claims, lookup, now_ms, what="session")
    return Session(principal, sid, kid, expires)


def issue_sign_in_link(user: ShopUser, keys: KeyRing, *, now_ms: int, ttl_ms: int) -> str:
    """The token of an emailed sign-in link: the user's claims, a short expiry."""
    return sign(
        SIGN_IN_LINK_KIND,
        {"s": user.shop_id, "e": user.email, "r": user.role, "n": user.activation_nonce,
         "iat": now_ms, "exp": now_ms + ttl_ms},
        keys,
    )  # fmt: skip


def verify_sign_in_link(
    token: str, keys: KeyRing, lookup: Callable[[str, str], ShopUser | None], now_ms: int
) -> Principal:
    """The user an emailed sign-in link signs in (revoked like a session), or :class:`AuthError`."""
    try:
        claims = verify(SIGN_IN_LINK_KIND, token, keys)
    except SignedTokenError as exc:
        raise AuthError(f"sign-in link not valid: {exc}") from None
    return user_principal(claims, lookup, now_ms, what="sign-in link")


def csrf_token(session: Session, keys: KeyRing) -> str:
    """The token every form of this session carries: an HMAC of the session id."""
    secret = keys.secret(session.kid) or keys.signing[1]
    return hmac.new(secret, b"csrf." + session.session_id.encode(), hashlib.sha256).hexdigest()


def csrf_ok(session: Session, keys: KeyRing, submitted: object) -> bool:
    return isinstance(submitted, str) and same_secret(csrf_token(session, keys), submitted)
