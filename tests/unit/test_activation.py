"""Activation links (single use, 120 h, injected clock) and admin API bearer tokens."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ingest.activation import (
    ACTIVATION_TTL_MS,
    ActivationError,
    activate,
    activation_token,
    check_activation,
    invite,
    reinvite,
)
from ingest.admin_auth import AuthError, authenticate, issue_api_token
from ingest.admin_signing import parse_signing_keys, sign
from shared.events import ShopUser, UserRole, UserStatus

KEYS = parse_signing_keys("k1:secret-one")
T0 = 1_700_000_000_000
HOUR_MS = 3_600_000


def pending(nonce: str = "n1") -> ShopUser:
    return invite(
        "shop1",
        "ana@shop.test",
        UserRole.CS_AGENT,
        invited_by="boss@shop.test",
        now_ms=T0,
        nonce=nonce,
    )


def lookup_of(*users: ShopUser):  # type: ignore[no-untyped-def]
    table = {(u.shop_id, u.email): u for u in users}
    return lambda shop, email: table.get((shop, email))


def test_link_expires_exactly_120_hours_after_the_invitation() -> None:
    user = pending()
    token = activation_token(user, KEYS)
    assert ACTIVATION_TTL_MS == 120 * HOUR_MS
    just_before = T0 + 120 * HOUR_MS - 1
    assert check_activation(token, KEYS, lookup_of(user), just_before) == user
    with pytest.raises(ActivationError) as err:
        check_activation(token, KEYS, lookup_of(user), T0 + 120 * HOUR_MS)
    assert err.value.code == "expired" and err.value.status == 410 and err.value.can_resend
    assert "120 hours" in err.value.reason


def test_used_link_is_refused_the_second_time() -> None:
    user = pending()
    token = activation_token(user, KEYS)
    active = activate(check_activation(token, KEYS, lookup_of(user), T0 + 1), T0 + 1)
    assert active.status == UserStatus.ACTIVE
    with pytest.raises(ActivationError) as err:
        check_activation(token, KEYS, lookup_of(active), T0 + 2)
    assert err.value.code == "used" and err.value.status == 409


def test_resend_supersedes_the_old_link_and_restarts_the_120_hours() -> None:
    user = pending("old")
    old_token = activation_token(user, KEYS)
    later = T0 + 130 * HOUR_MS
    fresh = reinvite(user, invited_by="ana@shop.test", now_ms=later, nonce="new")
    with pytest.raises(ActivationError) as err:
        check_activation(old_token, KEYS, lookup_of(fresh), later)
    assert err.value.code == "superseded"
    new_token = activation_token(fresh, KEYS)
    assert check_activation(new_token, KEYS, lookup_of(fresh), later + 119 * HOUR_MS) == fresh


def test_tampered_or_foreign_link_is_invalid() -> None:
    token = activation_token(pending(), KEYS)
    head, kid, body, mac = token.split(".")
    forged = sign(
        "act1",
        {"s": "shop1", "e": "eve@evil.test", "n": "n1", "x": T0 * 2},
        parse_signing_keys("k1:other-secret"),
    )
    for bad in (f"{head}.{kid}.{body}.{mac[:-2]}AA", forged, "nonsense"):
        with pytest.raises(ActivationError) as err:
            check_activation(bad, KEYS, lookup_of(pending()), T0)
        assert err.value.code == "invalid"


def test_withdrawn_invitation_is_reported() -> None:
    token = activation_token(pending(), KEYS)
    with pytest.raises(ActivationError) as err:
        check_activation(token, KEYS, lookup_of(), T0)
    assert err.value.code == "withdrawn"


def active_user(role: str = UserRole.ADMINISTRATOR) -> ShopUser:
    return activate(replace(pending(), role=role), T0)


def test_api_token_authenticates_its_user_with_shop_and_role() -> None:
    user = active_user()
    token = issue_api_token(user, KEYS, now_ms=T0, ttl_ms=HOUR_MS)
    who = authenticate(f"Bearer {token}", KEYS, "op-token", lookup_of(user), T0 + 1)
    assert (who.shop_id, who.email, who.role) == ("shop1", "ana@shop.test", "administrator")


@pytest.mark.parametrize(
    "header, reason",
    [
        (None, "missing Authorization"),
        ("Basic abc", "Bearer"),
        ("Bearer act1.k1.e30.xx", "not valid"),
    ],
)
def test_bad_authorization_headers_are_refused_with_a_reason(
    header: str | None, reason: str
) -> None:
    with pytest.raises(AuthError) as err:
        authenticate(header, KEYS, "op-token", lookup_of(active_user()), T0)
    assert reason in err.value.reason


def test_api_token_of_removed_reinvited_or_demoted_user_is_revoked() -> None:
    user = active_user()
    token = f"Bearer {issue_api_token(user, KEYS, now_ms=T0, ttl_ms=HOUR_MS)}"
    for lookup in (
        lookup_of(),
        lookup_of(replace(user, activation_nonce="other")),
        lookup_of(replace(user, role=UserRole.CS_AGENT)),
    ):
        with pytest.raises(AuthError, match="revoked"):
            authenticate(token, KEYS, "op-token", lookup, T0 + 1)


def test_api_token_expires() -> None:
    user = active_user()
    token = f"Bearer {issue_api_token(user, KEYS, now_ms=T0, ttl_ms=HOUR_MS)}"
    with pytest.raises(AuthError, match="expired"):
        authenticate(token, KEYS, "op-token", lookup_of(user), T0 + HOUR_MS)


def test_activation_link_is_not_an_api_token() -> None:
    user = active_user()
    with pytest.raises(AuthError):
        authenticate(f"Bearer {activation_token(user, KEYS)}", KEYS, "op", lookup_of(user), T0)


def test_operator_token_is_the_operator() -> None:
    assert authenticate("Bearer op-token", KEYS, "op-token", lookup_of(), T0).is_operator
