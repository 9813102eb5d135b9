"""Reply-address tokens: signed, expiring, bound to one conversation, ≤ 64 characters."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.settings_change import settings_document
from shared.events import ShopSettings
from shared.notification_window import WindowPolicy
from shared.tokens import (
    MAX_LOCAL_PART,
    BadSignature,
    ExpiredToken,
    MalformedToken,
    TokenTooLong,
    UnknownKey,
    is_reply_domain,
    mint_token,
    parse_keys,
    reply_address,
    reply_domain_prefix,
    split_reply_address,
    verify_token,
)

KEYS = parse_keys("3:current-secret,2:previous-secret")
NOW = 1_800_000_000.0
DAY = 86400.0


def test_token_round_trips_shop_and_conversation_of_platform_sized_ids() -> None:
    token = mint_token("7494049642642441621", "576460602530154245", KEYS, now_s=NOW, ttl_s=90 * DAY)
    decoded = verify_token(token, KEYS, now_s=NOW + DAY)
    assert decoded.shop_id == "7494049642642441621"
    assert decoded.conversation_id == "576460602530154245"
    assert len(token) <= MAX_LOCAL_PART
    assert token == token.lower()


@given(
    shop=st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=10),
    conv=st.from_regex(r"[0-9]{1,19}", fullmatch=True),
)
def test_any_short_id_pair_round_trips(shop: str, conv: str) -> None:
    try:
        token = mint_token(shop, conv, KEYS, now_s=NOW, ttl_s=DAY)
    except TokenTooLong:
        return  # a multi-byte shop id may not fit: refused at minting, never silently cut
    got = verify_token(token, KEYS, now_s=NOW)
    assert got.shop_id == shop
    assert int(got.conversation_id) == int(conv)


def test_token_is_accepted_in_upper_case_as_some_mtas_rewrite_local_parts() -> None:
    token = mint_token("1", "2", KEYS, now_s=NOW, ttl_s=DAY)
    assert verify_token(token.upper(), KEYS, now_s=NOW).conversation_id == "2"


def test_flipping_any_character_is_rejected() -> None:
    token = mint_token("7494049642642441621", "576460602530154245", KEYS, now_s=NOW, ttl_s=DAY)
    for i in range(len(token)):
        forged = token[:i] + ("a" if token[i] != "a" else "b") + token[i + 1 :]
        with pytest.raises((BadSignature, MalformedToken, UnknownKey)):
            verify_token(forged, KEYS, now_s=NOW)


def test_token_for_one_conversation_cannot_be_reused_for_another() -> None:
    a = mint_token("1", "100", KEYS, now_s=NOW, ttl_s=DAY)
    b = mint_token("1", "200", KEYS, now_s=NOW, ttl_s=DAY)
    # Splice a's signature onto b's payload: the MAC binds the ids.
    with pytest.raises((BadSignature, MalformedToken)):
        verify_token(b[:-16] + a[-16:], KEYS, now_s=NOW)


def test_expired_token_is_refused_with_a_reason() -> None:
    token = mint_token("1", "2", KEYS, now_s=NOW, ttl_s=DAY)
    with pytest.raises(ExpiredToken, match="expired"):
        verify_token(token, KEYS, now_s=NOW + 3 * DAY)


def test_token_signed_with_a_retired_key_is_refused_but_a_rotated_one_still_verifies() -> None:
    old = mint_token("1", "2", parse_keys("2:previous-secret"), now_s=NOW, ttl_s=DAY)
    assert verify_token(old, KEYS, now_s=NOW).shop_id == "1"  # kid 2 still configured
    with pytest.raises(UnknownKey):
        verify_token(old, parse_keys("3:current-secret"), now_s=NOW)


def test_token_signed_with_another_secret_is_a_forgery() -> None:
    forged = mint_token("1", "2", parse_keys("3:attacker-secret"), now_s=NOW, ttl_s=DAY)
    with pytest.raises(BadSignature):
        verify_token(forged, KEYS, now_s=NOW)


@pytest.mark.parametrize("junk", ["", "x", "not-base32!", "a" * 65, "7" * 10])
def test_garbage_is_malformed_not_a_crash(junk: str) -> None:
    with pytest.raises((MalformedToken, UnknownKey, BadSignature)):
        verify_token(junk, KEYS, now_s=NOW)


def test_ids_too_long_for_64_characters_are_refused_at_minting() -> None:
    with pytest.raises(TokenTooLong):
        mint_token("s" * 30, "c" * 30, KEYS, now_s=NOW, ttl_s=DAY)


def test_reply_address_round_trips_region_and_rejects_foreign_domains() -> None:
    addr = reply_address("abc", "GB", "bridge.example")
    assert addr == "abc@chat-seller-gb.bridge.example"
    assert split_reply_address(f"<{addr}>", "bridge.example") == ("abc", "gb")
    for bad in (
        "abc@chat-seller-gb.evil.example",
        "abc@bridge.example",
        "no-at-sign",
        "abc@chat-seller-.bridge.example",
        "abc@chat-seller-a.b.bridge.example",
    ):
        with pytest.raises(MalformedToken):
            split_reply_address(bad, "bridge.example")


def test_only_the_bridges_reply_domains_are_reply_domains() -> None:
    assert reply_domain_prefix("GB") == "chat-seller-gb"
    assert is_reply_domain("chat-seller-us.bridge.example", "bridge.example")
    assert is_reply_domain("CHAT-SELLER-US.Bridge.Example.", "bridge.example")
    for other in (
        "chat-seller-us.evil.example",
        "bridge.example",
        "seller-us.bridge.example",
        "chat-seller-bridge.example",
    ):
        assert not is_reply_domain(other, "bridge.example"), other


def test_the_settings_api_shows_the_prefix_of_the_addresses_digests_use() -> None:
    doc = settings_document(ShopSettings("s1", region="gb"), [], WindowPolicy())
    domain = reply_address("abc", "gb", "bridge.example").partition("@")[2]
    assert domain.startswith(doc["reply_domain_prefix"] + ".")


def test_key_spec_errors_are_explicit() -> None:
    with pytest.raises(ValueError, match="token keys: no keys configured"):
        parse_keys("")
    with pytest.raises(ValueError, match="ids are 0-15"):
        parse_keys("16:secret")
