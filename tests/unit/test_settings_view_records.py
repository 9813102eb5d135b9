"""The settings view applies shop.settings records as read from the topic: the latest good
record wins, a bad one is skipped (the shop keeps its last good settings), a tombstone
forgets the shop; a lookup after any of these sees it, cached or not."""

from __future__ import annotations

import logging

import pytest

from shared.codec import encode
from shared.config import BridgeSettings
from shared.events import ShopSettings
from shared.settings_view import ShopSettingsView


def record(**fields: object) -> bytes:
    return encode(ShopSettings(shop_id="s1", destination_email="a@s1.example", **fields))  # type: ignore[arg-type]


def test_a_newer_record_replaces_the_cached_settings() -> None:
    view = ShopSettingsView(BridgeSettings(), cache_size=2)
    view.apply(b"s1", record(shop_name="Old"))
    assert view.get("s1").shop_name == "Old"  # now cached unpacked
    view.apply(b"s1", record(shop_name="New", mail_auth_policy="dmarc_pass"))
    found = view.find("s1")
    assert found is not None and (found.shop_name, found.mail_auth_policy) == ("New", "dmarc_pass")


def test_a_bad_record_is_logged_and_the_last_good_settings_stay(
    caplog: pytest.LogCaptureFixture,
) -> None:
    view = ShopSettingsView(BridgeSettings())
    view.apply(b"s1", record(shop_name="Good"))
    with caplog.at_level(logging.WARNING):
        view.apply(b"s1", b'{"shop_id":"s1","alerts_enabled":"yes"}')
    assert view.get("s1").shop_name == "Good"
    assert "alerts_enabled: expected a boolean" in caplog.records[-1].reason  # type: ignore[attr-defined]


def test_a_tombstone_forgets_the_shop_even_when_cached() -> None:
    view = ShopSettingsView(BridgeSettings())
    view.apply(b"s1", record())
    assert view.known("s1") and view.find("s1") is not None
    view.apply(b"s1", None)
    assert not view.known("s1") and view.find("s1") is None and len(view) == 0


def test_more_shops_than_the_cache_holds_are_all_found() -> None:
    view = ShopSettingsView(BridgeSettings(), cache_size=2)
    for i in range(10):
        view.apply(f"s{i}".encode(), encode(ShopSettings(shop_id=f"s{i}", shop_name=str(i))))
    assert [view.get(f"s{i}").shop_name for i in range(10)] * 2 == [str(i) for i in range(10)] * 2
