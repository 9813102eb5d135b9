"""The console's session and CSRF tokens (ingest/console/session.py): pure checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
from pydantic import ValidationError

from ingest.activation import invite
from ingest.admin_auth import AuthError, issue_api_token
from ingest.admin_signing import parse_signing_keys
from ingest.console.session import (
    csrf_ok,
    csrf_token,
    issue_operator_session,
    issue_user_session,
    verify_session,
)
from ingest.ingest_settings import IngestSettings
from shared.events import ShopUser, UserStatus

KEYS = parse_signing_keys("2:new-key,1:old-key")
NOW = 1_764_000_000_000
HOUR = 3_600_000


def active_user(role: str = "administrator") -> ShopUser:
    user = invite("shop-1", "a@shop.test", role, invited_by="t", now_ms=NOW, nonce="n1")
    return replace(user, status=UserStatus.ACTIVE)


def lookup_of(*users: ShopUser) -> Callable[[str, str], ShopUser | None]:
    return lambda shop, email: next(
        (u for u in users if (u.shop_id, u.email) == (shop, email)), None
    )


def test_a_user_session_names_the_user_until_it_expires() -> None:
    user = active_user()
    token = issue_user_session(user, KEYS, now_ms=NOW, ttl_ms=HOUR)
    session = verify_session(token, KEYS, "op", lookup_of(user), NOW + HOUR - 1)
    assert (session.principal.shop_id, session.principal.email) == ("shop-1", "a@shop.test")
    with pytest.raises(AuthError, match="expired"):
        verify_session(token, KEYS, "op", lookup_of(user), NOW + HOUR)


def test_a_reinvited_or_re_roled_user_loses_the_session() -> None:
    user = active_user()
    token = issue_user_session(user, KEYS, now_ms=NOW, ttl_ms=HOUR)
    with pytest.raises(AuthError, match="revoked"):
        verify_session(token, KEYS, "op", lookup_of(replace(user, activation_nonce="n2")), NOW)
    with pytest.raises(AuthError, match="role changed"):
        verify_session(token, KEYS, "op", lookup_of(replace(user, role="cs_agent")), NOW)


def test_an_api_token_is_not_a_session() -> None:
    user = active_user()
    api = issue_api_token(user, KEYS, now_ms=NOW, ttl_ms=HOUR)
    with pytest.raises(AuthError, match="not a cs1 token"):
        verify_session(api, KEYS, "op", lookup_of(user), NOW)


def test_changing_the_operator_token_ends_operator_sessions() -> None:
    token = issue_operator_session("op-1", KEYS, now_ms=NOW, ttl_ms=HOUR)
    assert verify_session(token, KEYS, "op-1", lookup_of(), NOW).principal.is_operator
    with pytest.raises(AuthError, match="operator token changed"):
        verify_session(token, KEYS, "op-2", lookup_of(), NOW)


def test_each_session_has_its_own_id_and_csrf_token() -> None:
    user = active_user()
    one = verify_session(
        issue_user_session(user, KEYS, now_ms=NOW, ttl_ms=HOUR), KEYS, "", lookup_of(user), NOW
    )
    two = verify_session(
        issue_user_session(user, KEYS, now_ms=NOW, ttl_ms=HOUR), KEYS, "", lookup_of(user), NOW
    )
    assert one.session_id != two.session_id
    assert csrf_ok(one, KEYS, csrf_token(one, KEYS))
    assert not csrf_ok(one, KEYS, csrf_token(two, KEYS))
    assert not csrf_ok(one, KEYS, None) and not csrf_ok(one, KEYS, "")


def test_a_session_signed_by_a_rotated_out_key_still_verifies_while_listed() -> None:
    user = active_user()
    old_ring = parse_signing_keys("1:old-key")
    token = issue_user_session(user, old_ring, now_ms=NOW, ttl_ms=HOUR)
    session = verify_session(token, KEYS, "", lookup_of(user), NOW)
    assert session.kid == "1" and csrf_ok(session, KEYS, csrf_token(session, old_ring))
    with pytest.raises(AuthError, match="unknown key"):
        verify_session(token, parse_signing_keys("2:new-key"), "", lookup_of(user), NOW)


def test_a_tampered_session_is_refused() -> None:
    user = active_user()
    token = issue_user_session(user, KEYS, now_ms=NOW, ttl_ms=HOUR)
    kind, kid, body, mac = token.split(".")
    with pytest.raises(AuthError, match="does not verify"):
        verify_session(f"{kind}.{kid}.{body}x.{mac}", KEYS, "", lookup_of(user), NOW)


def test_an_activation_link_base_outside_the_console_refuses_to_start() -> None:
    # Sign-in links are mailed beside the activation page: a base kept from before the
    # console (/admin/activate) would send them to a path that does not exist.
    with pytest.raises(ValidationError, match="ending in /console/activate"):
        IngestSettings(activation_link_base="https://bridge.test/admin/activate")
    ok = IngestSettings(activation_link_base="https://bridge.test/console/activate/")
    assert ok.activation_link_base == "https://bridge.test/console/activate"
