"""The codec's packed form (what the state views hold per shop): any valid event comes back
equal, as decoding its record gives it; bytes that are not a packed event fail with a reason."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.codec import DecodeError, decode, encode, pack, unpack
from shared.events import ShopSettings, ShopUser, UserRole, UserStatus

text = st.text(max_size=40)
shop_settings = st.builds(
    ShopSettings,
    shop_id=text,
    alerts_enabled=st.booleans(),
    destination_email=text,
    destination_kind=st.sampled_from(["mailbox", "zendesk", "salesforce"]),
    region=st.sampled_from(["us", "gb"]),
    shop_name=text,
    window_override_s=st.none() | st.integers(0, 10**6),
    inline_images_allowed=st.none() | st.booleans(),
    authorized_senders=st.tuples(text, text) | st.just(()),
    mail_auth_policy=st.sampled_from(["", "aligned_pass", "dmarc_pass", "off"]),
    updated_at_ms=st.integers(0, 2**62),
    updated_by=text,
)
shop_users = st.builds(
    ShopUser,
    shop_id=text,
    email=text,
    role=st.sampled_from(list(UserRole)),
    status=st.sampled_from(list(UserStatus)),
    activation_nonce=text,
    activation_expires_at_ms=st.integers(0, 2**62),
)


@given(shop_settings)
def test_packed_settings_unpack_to_the_same_settings(settings: ShopSettings) -> None:
    assert unpack(ShopSettings, pack(settings)) == settings


@given(shop_users)
def test_packed_user_unpacks_to_what_decoding_its_record_gives(user: ShopUser) -> None:
    back, decoded = unpack(ShopUser, pack(user)), decode(ShopUser, encode(user))
    assert back == decoded == user
    assert [type(getattr(back, f)) for f in ("role", "status")] == [
        type(getattr(decoded, f)) for f in ("role", "status")
    ]


def test_a_realistic_settings_record_packs_to_less_than_half_its_json() -> None:
    sid = "shop-00123456"
    settings = ShopSettings(
        shop_id=sid,
        destination_email=f"support@{sid}.example.com",
        shop_name="Shop number 123456",
        authorized_senders=tuple(f"{n}@{sid}.example.com" for n in ("owner", "admin", "agent")),
        updated_at_ms=1_733_000_000_000,
        updated_by=f"owner@{sid}.example.com",
    )
    assert len(pack(settings)) < len(encode(settings)) / 2


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not deflated", "not a packed ShopSettings"),
        (
            pack(ShopUser(shop_id="s", email="e", role=UserRole.CS_AGENT)),
            f"expected {len(dataclasses.fields(ShopSettings))} values",
        ),
    ],
)
def test_bytes_that_are_not_packed_settings_fail_with_the_reason(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        unpack(ShopSettings, data)
