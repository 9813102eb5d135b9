"""Activation links: single use, expire exactly 120 hours after the invitation. Pure.

The link carries a signed token naming the shop, the email, the invitation's
nonce and its expiry. Single use without a database: the user record (on the
compacted ``admin.users``) holds the current nonce and the status; a link whose
nonce is already active was used, a link whose nonce was replaced by a resend is
superseded. The caller passes the clock, so expiry is tested to the millisecond.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import replace

from ingest.admin_signing import SignedTokenError, sign, verify
from shared.errors import BridgeError
from shared.events import ShopUser, UserStatus
from shared.key_ring import KeyRing

ACTIVATION_TTL_MS = 120 * 3600 * 1000
ACTIVATION_KIND = "act1"


class ActivationError(BridgeError):
    """Why an activation link cannot be used; ``can_resend`` says a fresh link may be asked for."""

    def __init__(
        self, code: str, reason: str, *, status: int, can_resend: bool, user: ShopUser | None = None
    ) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.status = status
        self.can_resend = can_resend
        self.user = user


def new_nonce() -> str:
    return secrets.token_urlsafe(12)


def invite(
    shop_id: str, email: str, role: str, *, invited_by: str, now_ms: int, nonce: str
) -> ShopUser:
    """A pending user whose activation link expires :data:`ACTIVATION_TTL_MS` from ``now_ms``."""
    return ShopUser(
        shop_id=shop_id,
        email=email,
        role=role,
        status=UserStatus.PENDING,
        activation_nonce=nonce,
        activation_expires_at_ms=now_ms + ACTIVATION_TTL_MS,
        invited_at_ms=now_ms,
        invited_by=invited_by,
        updated_at_ms=now_ms,
    )


def reinvite(user: ShopUser, *, invited_by: str, now_ms: int, nonce: str) -> ShopUser:
    """A fresh link for a pending user: a new nonce (the old link stops working), a new expiry."""
    return replace(
        user,
        activation_nonce=nonce,
        activation_expires_at_ms=now_ms + ACTIVATION_TTL_MS,
        invited_at_ms=now_ms,
        invited_by=invited_by,
        updated_at_ms=now_ms,
    )


def activation_token(user: ShopUser, keys: KeyRing) -> str:
    return sign(
        ACTIVATION_KIND,
        {
            "s": user.shop_id,
            "e": user.email,
            "n": user.activation_nonce,
            "x": user.activation_expires_at_ms,
        },
        keys,
    )


def check_activation(
    token: str, keys: KeyRing, lookup: Callable[[str, str], ShopUser | None], now_ms: int
) -> ShopUser:
    """The pending user this link activates, or :class:`ActivationError` with the reason."""
    try:
        claims = verify(ACTIVATION_KIND, token, keys)
        shop_id, email, nonce, expires = claims["s"], claims["e"], claims["n"], claims["x"]
    except (SignedTokenError, KeyError) as exc:
        raise ActivationError(
            "invalid",
            f"this activation link is not valid ({exc}); "
            "ask a shop administrator to send a new one",
            status=400,
            can_resend=False,
        ) from None
    user = lookup(str(shop_id), str(email))
    if user is None:
        raise ActivationError(
            "withdrawn",
            "this invitation was withdrawn: the user is no longer part of the shop",
            status=410,
            can_resend=False,
        )
    if user.activation_nonce != nonce:
        # No resend from here: anyone holding an old link (a forwarded or leaked mail)
        # could otherwise make us mail the user again and again.
        raise ActivationError(
            "superseded",
            "a newer activation link was sent to you; use the newest email",
            status=410,
            can_resend=False,
            user=user,
        )
    if user.status == UserStatus.ACTIVE:
        raise ActivationError(
            "used",
            "this activation link was already used: the account is active",
            status=409,
            can_resend=False,
            user=user,
        )
    if not isinstance(expires, int) or now_ms >= expires:
        raise ActivationError(
            "expired",
            "this activation link expired (links are valid for 120 hours); ask for a new one",
            status=410,
            can_resend=True,
            user=user,
        )
    return user


def activate(user: ShopUser, now_ms: int) -> ShopUser:
    return replace(user, status=UserStatus.ACTIVE, activated_at_ms=now_ms, updated_at_ms=now_ms)
